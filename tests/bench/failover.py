"""Measure controller and partition-leader failover times on a local 3+3 cluster.

Not a test: run it by hand and put the medians in BENCHMARKS.md.

    python tests/bench/failover.py [--rounds 5] [--session-timeout-ms 6000]

Controller failover: kill -9 the active controller, time until a CreateTopics
succeeds again. Leader failover: kill -9 a broker that leads partitions, time
until every partition of the topic has a live leader again. Each killed node
is restarted before the next round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from nodes import wait_until  # noqa: E402
from quorum import active_controller  # noqa: E402

from caudal.client import AdminClient, NewTopic  # noqa: E402
from caudal.local_cluster import LocalCluster  # noqa: E402

POLL_S = 0.02
LIMIT_S = 60.0


def _timed(predicate) -> float:  # noqa: ANN001
    """Seconds until ``predicate`` holds (polled every POLL_S, at most LIMIT_S)."""
    start = time.monotonic()
    wait_until(predicate, LIMIT_S, POLL_S, what="failover")
    return time.monotonic() - start


def _created(admin: AdminClient, name: str) -> bool:
    try:
        admin.create_topics([NewTopic(name, 1, 3)])[name].result()
        return True
    except Exception:
        return False


def controller_failover(cluster: LocalCluster, admin: AdminClient, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        leader = wait_until(lambda: active_controller(cluster), LIMIT_S, POLL_S, what="an active controller")
        cluster.controllers[leader].kill9()
        times.append(_timed(lambda: _created(admin, f"controller-failover-{i}")))
        cluster.controllers[leader].start()
        cluster.controllers[leader].wait_ready()
    return times


def leader_failover(cluster: LocalCluster, admin: AdminClient, rounds: int) -> list[float]:
    admin.create_topics([NewTopic("leader-failover", 6, 3)])["leader-failover"].result()
    times = []
    for _ in range(rounds):
        leaders = {p.leader for p in admin.describe_topics(["leader-failover"])["leader-failover"].partitions}
        victim = min(leader for leader in leaders if leader >= 0)
        cluster.brokers[victim].kill9()

        def moved() -> bool:
            parts = admin.describe_topics(["leader-failover"])["leader-failover"].partitions
            return all(p.leader not in (-1, victim) for p in parts)

        times.append(_timed(moved))
        cluster.brokers[victim].start()
        cluster.brokers[victim].wait_ready()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--session-timeout-ms", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), 3, 3, args.session_timeout_ms)
        try:
            cluster.start()
            with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
                c = controller_failover(cluster, admin, args.rounds)
                b = leader_failover(cluster, admin, args.rounds)
        finally:
            cluster.stop()
    print(f"controller failover (s): {', '.join(f'{t:.2f}' for t in c)}; median {statistics.median(c):.2f}")
    print(f"leader failover (s):     {', '.join(f'{t:.2f}' for t in b)}; median {statistics.median(b):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
