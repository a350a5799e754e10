#!/usr/bin/env bash
# Wheels for the packages the lent GPU machine's Python (3.12, with torch, transformers,
# accelerate, httpx, numpy, Pillow, rich...) lacks, at the versions of this checkout's .venv,
# into .whl/ (gitignored) for `run(..., carry=[".whl"])`; bench/device_run.sh installs them.
#
#   bash bench/device_wheels.sh        # after .ci/run or the README's install made .venv
#
# The list was checked against the machine's package list (the device tool's KINDS.md) on
# 2026-11-28, when these wheels served bench/device_run.sh on an H200. The built-in model's
# encoder package (88 MB) is left out: the GPU benchmarks do not load it, and a call carries
# 64 MiB at most.
set -euo pipefail
cd "$(dirname "$0")/.."
names="fastapi starlette uvicorn pydantic pydantic_core pydantic-settings python-dotenv
annotated-types typing-inspection typing_extensions SQLAlchemy greenlet alembic Mako sse-starlette
python-multipart jsonschema jsonschema-specifications referencing rpds-py itsdangerous diffusers
importlib_metadata lazy-importer zipp opentelemetry-api anyio"
pins=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null | python3 -c "
import re, sys
wanted = {re.sub(r'[-_.]+', '-', n).lower() for n in sys.argv[1].split()}
for line in sys.stdin:
    name = line.split('==')[0]
    if re.sub(r'[-_.]+', '-', name).lower() in wanted:
        print(line.strip())
" "$names")
mkdir -p .whl
# shellcheck disable=SC2086 - one argument per pin
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp -d .whl --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_12_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
  $pins py-spy 2>&1 | grep -v "^WARNING: Location" || true
echo "$(ls .whl | wc -l) wheels in .whl ($(du -sh .whl | cut -f1))"
