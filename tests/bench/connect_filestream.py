"""FileStreamSource throughput: how fast ``caudal connect standalone`` moves a file's lines into a topic.

    python tests/bench/connect_filestream.py --bootstrap-server 127.0.0.1:9092 --lines 1000000

Writes a file of ``--lines`` 100-byte lines, starts a standalone worker with a
FileStreamSource connector on it, and reports lines/s from the worker's start
to the moment the topic's end offset reaches the line count.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from caudal.client import AdminClient, Consumer, TopicPartition
from caudal.local_cluster import free_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-server", default="127.0.0.1:9092")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    topic = f"filestream-bench-{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "in.txt"
        with open(source, "w") as f:
            for i in range(args.lines):
                f.write(f"{i:010d} " + "x" * 88 + "\n")
        (work / "worker.properties").write_text(
            f"bootstrap.servers={args.bootstrap_server}\n"
            "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
            "value.converter=org.apache.kafka.connect.storage.StringConverter\n"
            f"offset.storage.file.filename={work / 'offsets'}\nlisteners=http://127.0.0.1:{free_port()}\n"
        )
        (work / "source.properties").write_text(
            f"name=bench-source\nconnector.class=FileStreamSource\nfile={source}\ntopic={topic}\nbatch.size=2000\n"
        )
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
    print(f"{count} lines in {elapsed:.2f} s: {count / elapsed:,.0f} lines/s (FileStreamSource -> {topic})")
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
