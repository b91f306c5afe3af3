"""The committed generated protobuf code must match what proto/regen.sh produces."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    work = tmp_path / "proto"
    shutil.copytree(PROTO_DIR / "caudal", work / "caudal", ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))
    protos = sorted(str(p.relative_to(work)) for p in (work / "caudal" / "v1").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", "--python_out=.", "--pyi_out=.", "--grpc_python_out=.", *protos],
        cwd=work,
        check=True,
    )
    generated = sorted(p.name for p in (work / "caudal" / "v1").iterdir() if p.suffix in (".py", ".pyi"))
    assert generated, "protoc produced nothing"
    stale = [name for name in generated if not filecmp.cmp(work / "caudal" / "v1" / name, PROTO_DIR / "caudal" / "v1" / name, shallow=False)]
    assert not stale, f"generated code is stale, run proto/regen.sh: {stale}"
