"""Kafka-Connect-compatible workers and connectors (source/sink, converters, REST API)."""
