"""Code both the servers and the client need: record batch codec, partitioner, configs, errors."""
