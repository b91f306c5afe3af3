"""caudal: a distributed event-streaming platform with Kafka's model on gRPC, RocksDB and Raft."""

__version__ = "0.1.0"
