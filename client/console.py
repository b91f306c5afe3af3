"""``caudal produce`` and ``caudal consume``: console producer and consumer (like Kafka's)."""

from __future__ import annotations

import argparse
import sys
import time

from caudal.client.cli_common import add_bootstrap, client_options, fail
from caudal.client.consumer import Consumer
from caudal.client.producer import Producer
from caudal.client.structs import TopicPartition
from caudal.common.errors import CaudalError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    prod = subparsers.add_parser("produce", help="send lines from stdin as records")
    prod.add_argument("topic")
    prod.add_argument("--key-separator", help="split each line into key and value at this string (Kafka's parse.key)")
    prod.add_argument("--acks", default="all", choices=["all", "-1", "0", "1"])
    prod.add_argument("--partition", type=int, help="send every record to this partition")
    prod.add_argument("--compression-type", choices=["none", "gzip", "snappy", "lz4", "zstd"], default=None)
    prod.add_argument("--linger-ms", type=int, default=5)
    prod.add_argument("--producer-property", action="append", metavar="KEY=VALUE", help="any Producer option, e.g. batch_size=65536")
    add_bootstrap(prod)
    prod.set_defaults(func=produce_main)

    cons = subparsers.add_parser("consume", help="print records of a topic, one value per line")
    cons.add_argument("topic")
    cons.add_argument("--from-beginning", action="store_true", help="start at the earliest offset instead of the end")
    cons.add_argument("--group", help="consume as a member of this consumer group")
    cons.add_argument("--partition", type=int, help="read only this partition")
    cons.add_argument("--offset", type=int, help="start at this offset (needs --partition)")
    cons.add_argument("--max-messages", type=int, help="exit after this many records")
    cons.add_argument("--timeout-ms", type=int, help="exit when no record arrives for this long")
    cons.add_argument("--print-key", action="store_true")
    cons.add_argument("--print-timestamp", action="store_true")
    cons.add_argument("--print-partition", action="store_true")
    cons.add_argument("--print-offset", action="store_true")
    cons.add_argument("--print-headers", action="store_true")
    cons.add_argument("--key-separator", default="\t", help="printed between fields (default: tab)")
    add_bootstrap(cons)
    cons.set_defaults(func=consume_main)


def produce_main(args: argparse.Namespace) -> int:
    options = {"acks": args.acks, "linger_ms": args.linger_ms, "compression_type": args.compression_type}
    options.update(client_options(args.producer_property, "--producer-property"))
    producer = Producer(bootstrap_servers=args.bootstrap_server, **options)
    futures = []
    try:
        for line in sys.stdin.buffer:
            line = line.rstrip(b"\r\n")
            key = None
            if args.key_separator is not None:
                sep = args.key_separator.encode()
                if sep not in line:
                    print(f"Error: no key separator {args.key_separator!r} in line: {line[:80]!r}", file=sys.stderr)
                    return 1
                key, line = line.split(sep, 1)
            futures.append(producer.send(args.topic, value=line, key=key, partition=args.partition))
            if len(futures) >= 10_000:
                _check(futures)
        producer.flush()
        _check(futures)
    except CaudalError as e:
        return fail(e)
    finally:
        producer.close()
    return 0


def _check(futures: list) -> None:
    for f in futures:
        f.result()
    futures.clear()


def _text(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", errors="replace")


def consume_main(args: argparse.Namespace) -> int:
    if args.offset is not None and args.partition is None:
        raise SystemExit("--offset needs --partition")
    if args.group and args.partition is not None:
        raise SystemExit("--partition cannot be used with --group (the group assigns partitions)")
    # With a group, --from-beginning only applies where the group has no committed offset (Kafka's rule);
    # positions are committed on close, so the next run with the same group continues after these records.
    consumer = Consumer(
        bootstrap_servers=args.bootstrap_server, group_id=args.group,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    count = 0
    try:
        if args.group:
            consumer.subscribe([args.topic])
        else:
            _assign(consumer, args)
        last_record = time.monotonic()
        out = sys.stdout
        while args.max_messages is None or count < args.max_messages:
            limit = None if args.max_messages is None else args.max_messages - count
            records = consumer.poll(timeout_ms=200, max_records=limit)
            if not records:
                if args.timeout_ms is not None and (time.monotonic() - last_record) * 1000 >= args.timeout_ms:
                    break
                continue
            last_record = time.monotonic()
            for r in records:
                out.write(_format(r, args) + "\n")
            out.flush()
            count += len(records)
    except CaudalError as e:
        return fail(e)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0


def _assign(consumer: Consumer, args: argparse.Namespace) -> None:
    """Without a group: read every partition of the topic (or just --partition, from --offset)."""
    partitions = [args.partition] if args.partition is not None else sorted(consumer.partitions_for_topic(args.topic))
    tps = [TopicPartition(args.topic, p) for p in partitions]
    consumer.assign(tps)
    if args.offset is not None:
        consumer.seek(tps[0], args.offset)


def _format(r, args: argparse.Namespace) -> str:
    sep = args.key_separator
    fields = []
    if args.print_timestamp:
        fields.append(f"CreateTime:{r.timestamp}")
    if args.print_partition:
        fields.append(f"Partition:{r.partition}")
    if args.print_offset:
        fields.append(f"Offset:{r.offset}")
    if args.print_headers:
        fields.append(",".join(f"{k}:{_text(v)}" for k, v in r.headers) or "NO_HEADERS")
    if args.print_key:
        fields.append(_text(r.key))
    fields.append(_text(r.value))
    return sep.join(fields)
