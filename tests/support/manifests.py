"""Loading the deployment's YAML files in tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_docs(path: Path) -> list[dict]:
    """Every non-empty YAML document of ``path``."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
