"""Server processes collect cyclic garbage rarely and leave their startup objects out of the collector's scans."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from caudal.common.server_process import YOUNG_THRESHOLD, OLDER_THRESHOLD, tune_garbage_collector
before = gc.get_threshold()
tune_garbage_collector()
assert before == (700, 10, 10), before
assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
"""


def test_tuning_raises_thresholds_and_freezes_startup_objects() -> None:
    # A fresh interpreter: the setting is process-wide and must not leak into the test run.
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
