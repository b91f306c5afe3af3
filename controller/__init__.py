"""The controller: owner of cluster metadata (topics, partitions, brokers, configs)."""
