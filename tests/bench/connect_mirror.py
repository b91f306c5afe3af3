"""MirrorSource throughput: how fast a standalone worker copies a topic from one cluster to another.

    python tests/bench/connect_mirror.py --source-bootstrap 127.0.0.1:29092 --target-bootstrap 127.0.0.1:29093 --records 300000

Fills a new one-partition topic of the source cluster with ``--records``
100-byte records, starts ``caudal connect standalone`` on the target cluster
with a MirrorSourceConnector for that topic (ByteArrayConverter, so bytes pass
through), and reports records/s from the worker's start to the moment the
remote topic's end offset reaches the record count (the same measure as
``connect_sources.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connect_sources import _wait_for as wait_for_end_offset

from caudal.client import AdminClient, NewTopic, Producer
from caudal.local_cluster import free_port

BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--target-bootstrap", default="127.0.0.1:9093")
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    topic = f"mirror-bench-{int(time.time())}"
    _fill(args.source_bootstrap, topic, args.records)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "worker.properties").write_text(
            f"bootstrap.servers={args.target_bootstrap}\nkey.converter={BYTES}\nvalue.converter={BYTES}\n"
            f"offset.storage.file.filename={work / 'offsets'}\nlisteners=http://127.0.0.1:{free_port()}\n"
        )
        (work / "mirror.properties").write_text(
            "name=bench-mirror\nconnector.class=caudal.connect.mirror.MirrorSourceConnector\ntasks.max=1\n"
            f"topics={topic}\nsource.cluster.bootstrap.servers={args.source_bootstrap}\n"
            f"target.cluster.bootstrap.servers={args.target_bootstrap}\n"
        )
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "caudal", "connect", "standalone", str(work / "worker.properties"), str(work / "mirror.properties")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            count = wait_for_end_offset(args.target_bootstrap, f"source.{topic}", args.records, started + args.timeout_s)
            elapsed = time.monotonic() - started
        finally:
            worker.terminate()
            worker.wait(60)
    print(f"{count} records in {elapsed:.2f} s: {count / elapsed:,.0f} records/s (MirrorSource {topic} -> source.{topic})")
    return 0 if count >= args.records else 1


def _fill(bootstrap: str, topic: str, records: int) -> None:
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    with Producer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262144) as producer:
        for i in range(records):
            producer.send(topic, f"{i:010d} ".encode() + b"x" * 89)
        producer.flush(300)


if __name__ == "__main__":
    sys.exit(main())
