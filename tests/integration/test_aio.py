"""The asyncio SDK against a real node: same behaviour as the blocking clients."""

from __future__ import annotations

import asyncio

import pytest

from caudal.client import NewTopic, TopicPartition
from caudal.client.aio import AIOAdminClient, AIOConsumer, AIOProducer
from caudal.common.errors import KafkaTimeoutError, TopicAlreadyExistsError


def test_produce_and_consume_with_asyncio(dev_node) -> None:
    async def main() -> None:
        async with AIOAdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
            await (await admin.create_topics([NewTopic("aio", num_partitions=2)]))["aio"]
            with pytest.raises(TopicAlreadyExistsError):
                await (await admin.create_topics([NewTopic("aio", num_partitions=2)]))["aio"]
            assert len((await admin.describe_topics(["aio"]))["aio"].partitions) == 2

        async with AIOProducer(bootstrap_servers=dev_node.bootstrap, linger_ms=1) as producer:
            first = await producer.send_and_wait("aio", b"first", key=b"k", headers=[("h", b"1")])
            futures = [await producer.send("aio", f"v{i}".encode(), partition=i % 2) for i in range(200)]
            await producer.flush()
            metadata = await asyncio.gather(*futures)
        assert first.topic == "aio" and first.offset == 0
        assert sorted(m.offset for m in metadata if m.partition == 1) == list(range(100))

        async with AIOConsumer(bootstrap_servers=dev_node.bootstrap, auto_offset_reset="earliest") as consumer:
            tps = [TopicPartition("aio", 0), TopicPartition("aio", 1)]
            await consumer.assign(tps)
            got = []
            for _ in range(100):
                batch = await consumer.getmany(timeout_ms=200)
                got += [r for records in batch.values() for r in records]
                if len(got) >= 201:
                    break
            assert len(got) == 201
            keyed = next(r for r in got if r.key == b"k")
            assert (keyed.value, list(keyed.headers)) == (b"first", [("h", b"1")])
            assert await consumer.position(tps[1]) == 100

            await consumer.seek(tps[1], 99)
            record = await asyncio.wait_for(consumer.__anext__(), 10)
            assert (record.partition, record.offset, record.value) == (1, 99, b"v199")

    asyncio.run(main())


def test_asyncio_producer_times_out_on_unknown_topics(dev_node) -> None:
    async def main() -> None:
        async with AIOProducer(bootstrap_servers=dev_node.bootstrap, max_block_ms=500) as producer:
            with pytest.raises(KafkaTimeoutError):
                await producer.send("never-created", b"x")

    asyncio.run(main())


def test_a_stopped_asyncio_consumer_leaves_no_fetch_running_on_the_loop(dev_node) -> None:
    """The application's loop outlives the consumer: its parked fetch must end with it."""

    async def main() -> None:
        async with AIOAdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
            await (await admin.create_topics([NewTopic("quiet", num_partitions=2)]))["quiet"]
        consumer = AIOConsumer(bootstrap_servers=dev_node.bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=5000)
        await consumer.start()
        await consumer.assign([TopicPartition("quiet", 0), TopicPartition("quiet", 1)])
        assert await consumer.poll(timeout_ms=300) == []  # a fetch is now parked on the empty topic
        await consumer.stop()
        await asyncio.sleep(0)  # let the cancellations run
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert left == [], left

    asyncio.run(main())
