"""The broker recognises an idempotent producer's retries, also after a restart."""

from __future__ import annotations

import grpc
from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.common.errors import ErrorCode
from caudal.common.record_batch import build_batch, validate_batches
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import broker_pb2_grpc
from fault_proxy import FaultProxy
from nodes import DevNode
from reading import read_all

from caudal.local_cluster import free_port


def _produce(stub, records: bytes) -> pb.PartitionProduceResponse:  # noqa: ANN001
    request = pb.ProduceRequest(acks=-1, timeout_ms=5000)
    request.topics.add(topic="payments").partitions.add(partition=0, records=records)
    return stub.Produce(request, timeout=10).topics[0].partitions[0]


def _end_offset(bootstrap: str) -> int:
    consumer = Consumer(bootstrap_servers=bootstrap)
    try:
        tp = TopicPartition("payments", 0)
        consumer.assign([tp])
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def test_retried_batches_are_appended_once(tmp_path) -> None:
    node = DevNode(tmp_path / "node").start()
    try:
        with AdminClient(bootstrap_servers=node.bootstrap) as admin:
            admin.create_topics([NewTopic("payments", 1)])["payments"].result()
        with grpc.insecure_channel(node.bootstrap) as channel:
            stub = broker_pb2_grpc.BrokerStub(channel)
            init = stub.InitProducerId(pb.InitProducerIdRequest(), timeout=10)
            assert init.error_code == 0 and init.producer_id >= 0

            def batch(first_seq: int, n: int) -> bytes:
                return build_batch(
                    [(1_000 + i, None, f"p{first_seq + i}".encode(), ()) for i in range(n)],
                    producer_id=init.producer_id, producer_epoch=init.producer_epoch, base_sequence=first_seq,
                )

            first, second = batch(0, 3), batch(3, 2)
            assert _produce(stub, first).base_offset == 0
            assert _produce(stub, second).base_offset == 3
            retry = _produce(stub, first)
            assert (retry.error_code, retry.base_offset) == (0, 0), "a retry gets the original offsets"
            gap = _produce(stub, batch(9, 1))
            assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER and "expected" in gap.error_message
        assert _end_offset(node.bootstrap) == 5

        node.kill9()
        node.start()
        with grpc.insecure_channel(node.bootstrap) as channel:
            stub = broker_pb2_grpc.BrokerStub(channel)
            assert _produce(stub, second).base_offset == 3, "producer state is rebuilt from the log"
            assert _produce(stub, batch(5, 1)).base_offset == 5
        assert _end_offset(node.bootstrap) == 6
    finally:
        node.stop()


def test_sdk_producer_is_idempotent_by_default(dev_node) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        admin.create_topics([NewTopic("payments", 1)])["payments"].result()
    with Producer(bootstrap_servers=dev_node.bootstrap) as producer:
        assert producer.config.enable_idempotence
        offsets = [producer.send("payments", value=str(i).encode()).result(timeout=10).offset for i in range(50)]
    assert offsets == list(range(50))
    consumer = Consumer(bootstrap_servers=dev_node.bootstrap, auto_offset_reset="earliest")
    try:
        consumer.assign([TopicPartition("payments", 0)])
        records = []
        for _ in range(50):
            records += consumer.poll(timeout_ms=200)
            if len(records) >= 50:
                break
    finally:
        consumer.close()
    assert [r.value for r in records] == [str(i).encode() for i in range(50)]
    with grpc.insecure_channel(dev_node.bootstrap) as channel:
        request = pb.FetchRequest(max_wait_ms=0, max_bytes=1 << 20)
        request.topics.add(topic="payments").partitions.add(partition=0, fetch_offset=0)
        stored = broker_pb2_grpc.BrokerStub(channel).Fetch(request, timeout=10).topics[0].partitions[0].records
    headers = validate_batches(stored)
    assert all(h.producer_id >= 0 and h.producer_epoch == 0 for h in headers), "batches carry the producer id"
    assert [h.base_sequence for h in headers] == [h.base_offset for h in headers], "sequences follow the records"


def _value(i: int) -> bytes:
    return f"p{i:06d}".encode().ljust(300, b".")


def test_producer_retries_after_lost_responses_write_no_duplicates(tmp_path) -> None:
    broker_port, proxy_port = free_port(), free_port()
    node = DevNode(tmp_path / "node", ["--port", str(broker_port), "--advertised-listener", f"127.0.0.1:{proxy_port}"])
    node.start()
    # Every produce request carries at least one 300-byte record, so it is big enough to be a candidate for a
    # lost response; metadata, fetch and HTTP/2 control frames are far smaller and always get through.
    proxy = FaultProxy(proxy_port, broker_port, drop_ratio=0.2, min_request_bytes=300)
    bootstrap = f"127.0.0.1:{proxy_port}"
    try:
        with AdminClient(bootstrap_servers=f"127.0.0.1:{broker_port}") as admin:  # set-up, not under test
            admin.create_topics([NewTopic("payments", 2)])["payments"].result(30)
        with Producer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=3000,
                      retry_backoff_ms=20, delivery_timeout_ms=60_000) as producer:
            futures = [producer.send("payments", _value(i), partition=i % 2) for i in range(4000)]
            producer.flush(90)
            acked = [f.result(60) for f in futures]
        assert proxy.dropped > 0, "the proxy never lost a response: the test exercised nothing"
        proxy.heal()
        consumer = Consumer(bootstrap_servers=bootstrap)
        try:
            tps = [TopicPartition("payments", p) for p in range(2)]
            assert consumer.end_offsets(tps) == {tp: 2000 for tp in tps}, "a retried batch was written twice"
        finally:
            consumer.close()
        got = read_all(bootstrap, "payments", 2, 4000, timeout_s=30)
        values = sorted(r.value for records in got.values() for r in records)
        assert values == sorted(_value(i) for i in range(4000))
        assert len({(md.partition, md.offset) for md in acked}) == 4000
    finally:
        proxy.stop()
        node.stop()
