"""The broker: partition logs in RocksDB, produce/fetch, replication, group coordination."""
