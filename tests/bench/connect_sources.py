"""Source connector throughput: how fast ``caudal connect standalone`` moves data into a topic.

    python tests/bench/connect_sources.py --bootstrap-server 127.0.0.1:9092 --lines 1000000 filestream
    python tests/bench/connect_sources.py --bootstrap-server 127.0.0.1:9092 --lines 300000 jdbc

``filestream`` writes a file of ``--lines`` 100-byte lines for a FileStreamSource;
``jdbc`` fills an SQLite table with as many rows (an id and a 90-character text)
for a JDBC source in incrementing mode. Either way a standalone worker runs the
connector, and the rate is counted from the worker's start to the moment the
topic's end offset reaches the count.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from caudal.client import AdminClient, Consumer, TopicPartition

from caudal.local_cluster import free_port


def _filestream(work: Path, count: int, topic: str) -> dict[str, str]:
    source = work / "in.txt"
    with open(source, "w") as f:
        for i in range(count):
            f.write(f"{i:010d} " + "x" * 88 + "\n")
    return {"connector.class": "FileStreamSource", "file": str(source), "topic": topic, "batch.size": "2000"}


def _jdbc(work: Path, count: int, topic: str) -> dict[str, str]:
    database = work / "rows.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        db.executemany("INSERT INTO events (id, body) VALUES (?, ?)", ((i, "x" * 90) for i in range(1, count + 1)))
    return {"connector.class": "JdbcSource", "connection.url": f"jdbc:sqlite:{database}", "mode": "incrementing",
            "incrementing.column.name": "id", "table.whitelist": "events", "topic.prefix": topic,
            "batch.max.rows": "5000", "poll.interval.ms": "100",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": "false"}


SOURCES = {"filestream": _filestream, "jdbc": _jdbc}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines or rows to move")
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    stamp = int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = SOURCES[args.source](work, args.lines, f"{args.source}-bench-{stamp}")
        topic = config["topic"] if args.source == "filestream" else config["topic.prefix"] + "events"
        (work / "worker.properties").write_text(
            f"bootstrap.servers={args.bootstrap_server}\n"
            "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
            "value.converter=org.apache.kafka.connect.storage.StringConverter\n"
            f"offset.storage.file.filename={work / 'offsets'}\nlisteners=http://127.0.0.1:{free_port()}\n"
        )
        (work / "source.properties").write_text("".join(f"{k}={v}\n" for k, v in {"name": "bench-source", **config}.items()))
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "caudal", "connect", "standalone", str(work / "worker.properties"), str(work / "source.properties")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            count = _wait_for(args.bootstrap_server, topic, args.lines, started + args.timeout_s)
            elapsed = time.monotonic() - started
        finally:
            worker.terminate()
            worker.wait(60)
    print(f"{count} records in {elapsed:.2f} s: {count / elapsed:,.0f} records/s ({args.source} source -> {topic})")
    return 0 if count >= args.lines else 1


def _wait_for(bootstrap: str, topic: str, lines: int, deadline: float) -> int:
    tp = TopicPartition(topic, 0)
    consumer = Consumer(bootstrap_servers=bootstrap)
    try:
        with AdminClient(bootstrap_servers=bootstrap) as admin:
            while topic not in admin.list_topics() and time.monotonic() < deadline:
                time.sleep(0.05)
        consumer.assign([tp])
        end = 0
        while end < lines and time.monotonic() < deadline:
            end = consumer.end_offsets([tp])[tp]
            time.sleep(0.05)
        return end
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())
