"""``caudal dev --metrics-port`` serves broker metrics in the Prometheus text format."""

from __future__ import annotations

import urllib.request

from nodes import DevNode, wait_until
from prometheus_client.parser import text_string_to_metric_families

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.local_cluster import free_port


def _scrape(port: int) -> list:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [sample for family in text_string_to_metric_families(body) for sample in family.samples]


def test_metrics_follow_traffic(tmp_path) -> None:
    port = free_port()
    node = DevNode(tmp_path / "node", ["--metrics-port", str(port)]).start()
    try:
        with AdminClient(bootstrap_servers=node.bootstrap) as admin:
            admin.create_topics([NewTopic("m", num_partitions=2)])["m"].result()
        with Producer(bootstrap_servers=node.bootstrap) as producer:
            for i in range(30):
                producer.send("m", value=b"x" * 10, partition=i % 2)
            producer.flush()

        def sample(metrics: list, name: str, **labels: str) -> float | None:
            for s in metrics:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
            return None

        def counted() -> list | None:
            metrics = _scrape(port)
            return metrics if sample(metrics, "caudal_broker_messages_in_total", topic="m") == 30 else None

        metrics = wait_until(counted, 10, what="messages-in to count the 30 records")
        assert sample(metrics, "caudal_log_end_offset", topic="m", partition="0") == 15
        assert sample(metrics, "caudal_partition_high_watermark", topic="m", partition="1") == 15
        assert sample(metrics, "caudal_broker_leader_count") == 2
        assert sample(metrics, "caudal_broker_under_replicated_partitions") == 0
        assert sample(metrics, "caudal_broker_under_min_isr_partitions") == 0
        assert sample(metrics, "caudal_broker_request_duration_seconds_count", api="Produce") >= 1
        assert sample(metrics, "process_resident_memory_bytes") > 0
    finally:
        node.stop()


def test_consumer_group_lag_is_log_end_minus_committed(tmp_path) -> None:
    port = free_port()
    node = DevNode(tmp_path / "node", ["--metrics-port", str(port)]).start()
    try:
        with AdminClient(bootstrap_servers=node.bootstrap) as admin:
            admin.create_topics([NewTopic("lagging", num_partitions=2)])["lagging"].result()
        with Producer(bootstrap_servers=node.bootstrap) as producer:
            for i in range(40):
                producer.send("lagging", value=b"x", partition=i % 2)
            producer.flush()
        consumer = Consumer(bootstrap_servers=node.bootstrap, group_id="slow")
        try:
            consumer.commit({TopicPartition("lagging", 0): 5, TopicPartition("lagging", 1): 20})
        finally:
            consumer.close()

        def lag(metrics: list, partition: str) -> float | None:
            return next((s.value for s in metrics if s.name == "caudal_consumer_group_lag"
                         and s.labels == {"group": "slow", "topic": "lagging", "partition": partition}), None)

        metrics = wait_until(lambda: (m := _scrape(port)) and lag(m, "0") is not None and m, 15, what="lag gauges")
        assert (lag(metrics, "0"), lag(metrics, "1")) == (15, 0)
        total = next(s.value for s in metrics if s.name == "caudal_consumer_group_lag_sum" and s.labels == {"group": "slow"})
        assert total == 15
        with Producer(bootstrap_servers=node.bootstrap) as producer:
            for _ in range(7):
                producer.send("lagging", value=b"x", partition=1)
            producer.flush()
        wait_until(lambda: lag(_scrape(port), "1") == 7, 15, what="lag to follow new records")
    finally:
        node.stop()
