"""Shared fixtures: real caudal processes on loopback, started and stopped by PID."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
