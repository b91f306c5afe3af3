#!/usr/bin/env bash
# Regenerate the committed Python code for proto/caudal/v1/*.proto.
# Generated modules import each other as `caudal.v1.*`, which pyproject.toml maps
# onto proto/caudal/v1, so the output needs no rewriting.
set -euo pipefail
cd "$(dirname "$0")"
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. caudal/v1/*.proto
