"""Produce and Fetch sessions: many requests on one stream per broker, matched by correlation id."""

from __future__ import annotations

import asyncio
import time

import pytest
from caudal.client import AdminClient, NewTopic
from caudal.client._transport import Connections
from caudal.common.errors import NetworkError
from caudal.common.record_batch import build_batch
from caudal.v1 import broker_pb2 as pb
from nodes import DevNode

from caudal.local_cluster import free_port


def _fetch(partition: int, offset: int, max_wait_ms: int) -> pb.FetchRequest:
    request = pb.FetchRequest(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20)
    request.topics.add(topic="orders").partitions.add(partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20, current_leader_epoch=-1)
    return request


def _produce(partition: int, value: bytes) -> pb.ProduceRequest:
    request = pb.ProduceRequest(acks=-1, timeout_ms=5000)
    request.topics.add(topic="orders").partitions.add(partition=partition, records=build_batch([(1000, None, value, ())]))
    return request


def _create_orders(bootstrap: str) -> None:
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("orders", 2)])["orders"].result()


def test_a_parked_fetch_does_not_hold_up_later_requests_on_its_session(dev_node) -> None:
    _create_orders(dev_node.bootstrap)

    async def scenario() -> None:
        conns = Connections()
        try:
            first = await conns.call(dev_node.bootstrap, "Produce", _produce(1, b"ready"), 10)
            assert first.topics[0].partitions[0].error_code == 0
            parked = asyncio.ensure_future(conns.call(dev_node.bootstrap, "Fetch", _fetch(0, 0, 10_000), 15))
            await asyncio.sleep(0.2)
            assert not parked.done()
            started = time.monotonic()
            ready = await conns.call(dev_node.bootstrap, "Fetch", _fetch(1, 0, 10_000), 15)
            assert time.monotonic() - started < 2 and not parked.done()  # answered past the parked one
            assert ready.topics[0].partitions[0].partition == 1 and ready.topics[0].partitions[0].records
            assert len(conns._sessions) == 2  # one Fetch session and one Produce session to this broker
            await conns.call(dev_node.bootstrap, "Produce", _produce(0, b"wake"), 10)
            woken = await asyncio.wait_for(parked, 5)
            assert woken.topics[0].partitions[0].partition == 0 and b"wake" in woken.topics[0].partitions[0].records
        finally:
            await conns.close()

    asyncio.run(scenario())


def test_a_stopping_broker_ends_its_sessions_and_a_restarted_one_gets_new_ones(tmp_path) -> None:
    port = free_port()
    node = DevNode(tmp_path / "node", ["--port", str(port)]).start()
    try:
        _create_orders(node.bootstrap)

        async def scenario() -> None:
            conns = Connections()
            try:
                parked = asyncio.ensure_future(conns.call(node.bootstrap, "Fetch", _fetch(0, 0, 30_000), 60))
                await asyncio.sleep(0.3)
                started = time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, node.stop)
                with pytest.raises(NetworkError):
                    await asyncio.wait_for(parked, 10)
                assert time.monotonic() - started < 15  # not the fetch's 30 s wait
                await asyncio.get_running_loop().run_in_executor(None, node.start)
                response = await conns.call(node.bootstrap, "Produce", _produce(0, b"again"), 10)
                assert response.topics[0].partitions[0].error_code == 0
                fetched = await conns.call(node.bootstrap, "Fetch", _fetch(0, 0, 1000), 10)
                assert b"again" in fetched.topics[0].partitions[0].records
            finally:
                await conns.close()

        asyncio.run(scenario())
    finally:
        node.stop()
