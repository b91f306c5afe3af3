"""The controller front end over a real (single-voter, file) quorum, with an injected clock."""

from __future__ import annotations

import asyncio

from caudal.common.errors import ErrorCode
from caudal.controller.controller import Controller
from caudal.controller.local_quorum import LocalQuorum
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2 as cpb


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def _controller(tmp_path, clock: Clock) -> Controller:
    return Controller(1, lambda publish: LocalQuorum(1, tmp_path / "meta", publish), session_timeout_ms=6000, clock=clock)


async def _register(c: Controller, broker_id: int) -> int:
    r = await c.register_broker(cpb.RegisterBrokerRequest(broker_id=broker_id, host="127.0.0.1", port=9000 + broker_id, incarnation_id=bytes([broker_id])))
    assert r.error_code == 0
    h = await c.broker_heartbeat(cpb.BrokerHeartbeatRequest(broker_id=broker_id, broker_epoch=r.broker_epoch, metadata_version=c.image.version))
    assert h.error_code == 0 and not h.fenced
    return r.broker_epoch


def test_brokers_register_fenced_then_unfence_and_expired_sessions_are_fenced(tmp_path) -> None:
    async def main() -> None:
        clock = Clock()
        c = _controller(tmp_path, clock)
        c.start()
        try:
            epochs = {b: await _register(c, b) for b in (1, 2, 3)}
            created = await c.create_topics(pb.CreateTopicsRequest(topics=[pb.CreatableTopic(name="t", num_partitions=3, replication_factor=3)]))
            assert created.results[0].error_code == 0
            led_by_2 = [i for i, p in c.image.topics["t"].partitions.items() if p.leader == 2]
            assert led_by_2
            clock.now += 3000
            for b in (1, 3):  # broker 2 stays silent
                await c.broker_heartbeat(cpb.BrokerHeartbeatRequest(broker_id=b, broker_epoch=epochs[b], metadata_version=c.image.version))
            clock.now += 4000
            await c._duty_round()
            assert c.image.brokers[2].fenced and not c.image.brokers[1].fenced
            for i in led_by_2:
                p = c.image.topics["t"].partitions[i]
                assert p.leader in (1, 3) and 2 not in p.isr
            stale = await c.broker_heartbeat(cpb.BrokerHeartbeatRequest(broker_id=2, broker_epoch=epochs[2] - 1))
            assert stale.error_code == ErrorCode.STALE_BROKER_EPOCH
        finally:
            await c.stop()

    asyncio.run(main())


def test_metadata_survives_a_restart_and_watchers_catch_up_from_a_snapshot(tmp_path) -> None:
    async def main() -> None:
        clock = Clock()
        c = _controller(tmp_path, clock)
        c.start()
        await _register(c, 1)
        await c.create_topics(pb.CreateTopicsRequest(topics=[pb.CreatableTopic(name="kept", num_partitions=2, replication_factor=1)]))
        version = c.image.version
        await c.stop()

        again = _controller(tmp_path, clock)
        again.start()
        try:
            assert again.image.version == version and "kept" in again.image.topics
            stream = again.watch_metadata(cpb.WatchMetadataRequest(from_version=0))
            first = await asyncio.wait_for(stream.__anext__(), 5)
            assert first.snapshot and first.version == version
            await again.create_topics(pb.CreateTopicsRequest(topics=[pb.CreatableTopic(name="new", num_partitions=1, replication_factor=1)]))
            delta = await asyncio.wait_for(stream.__anext__(), 5)
            assert not delta.snapshot and delta.version == version + 1
            await stream.aclose()
        finally:
            await again.stop()

    asyncio.run(main())


def test_duplicate_live_broker_id_is_refused(tmp_path) -> None:
    async def main() -> None:
        c = _controller(tmp_path, Clock())
        c.start()
        try:
            await _register(c, 1)
            other = await c.register_broker(cpb.RegisterBrokerRequest(broker_id=1, host="127.0.0.1", port=1, incarnation_id=b"other"))
            assert other.error_code == ErrorCode.DUPLICATE_BROKER_REGISTRATION
        finally:
            await c.stop()

    asyncio.run(main())
