#!/usr/bin/env bash
# The issue-6 GPU benchmarks as one prepared command for a lent device machine (no internet there).
#
#   device tool: run(command="bash bench/device_run.sh", carry=[".whl"], timeout_s=540)
#                run(command="bash bench/device_run.sh speed", carry=[".whl"], timeout_s=540)
#                run(command="bash bench/device_run.sh breakdown", carry=[".whl"], timeout_s=300)
#                run(command="BREAKDOWN_TIMEOUT_S=150 BENCH_TIMEOUT_S=380 bash bench/device_run.sh all", carry=[".whl"], timeout_s=570)
#                run(command="BENCH_TIMEOUT_S=470 bash bench/device_run.sh replicas", carry=[".whl"], timeout_s=520)
#                run(command="bash bench/device_run.sh sdxl", carry=[".whl"], timeout_s=540)
#                run(command="bash bench/device_run.sh flux", carry=[".whl"], timeout_s=590)
#
# `throughput` (default): bench/gpu_throughput.py, plain diffusers against imagehub over HTTP:
#   compiled with CUDA graphs and a (random-weight) TAESD decoder, max batch 16, buckets
#   1/4/8/12/16 (the fastest on the H200, 2026-11-28): two copies of the model (`replicas = 2`,
#   4 workers), one copy (is the gain the copies or the smaller batches?), two copies again (is it
#   steady?), then one copy with ENGINE_HANDOFF=true, if the deadline allows. The table's
#   "pad %" is the share of the batch slots the model ran that were padding.
# `replicas`: the H200 run of 2026-11-28 (then with 4 and 5 workers set by hand; the server now
#   gives two per copy): the compiled card at max batch 32 served by 2 copies of the model
#   (`replicas = 2`, each in a process of its own on the one GPU), one copy, 3 copies at max
#   batch 24, and 2 copies again (is it steady?); no py-spy.
# `breakdown`: bench/engine_breakdown.py: where one compiled call of 32 goes (each pipeline
#   phase synchronised, the GPU's busy share under torch.profiler; the trace to $OUT).
# `all`: `breakdown`, then `throughput` (about 450 s on an H100; the timeouts above fit 570 s).
# `sdxl`: the same for SDXL's full-size architecture at 1024² and 4 steps, eager and compiled,
#   max batch 16 (plain diffusers at batches 4, 8 and 16).
# `flux`: FLUX.1-schnell's full-size architecture (12B transformer, T5-XXL: 34 GB in bf16, on
#   disk and on the GPU) at 1024² and 4 steps, 16 clients, max batch 8: compiled (regional, CUDA
#   graphs), then eager if the deadline allows.
# `isolation`: bench/engine_isolation.py on the GPU (the engine beside a busy Python thread).
# `speed`: bench/speed_options.py, each card speed option against eager, engine only.
#
# Packages the device's Python lacks come from wheels carried in .whl/ (`bash
# bench/device_wheels.sh` downloads them here, at .venv's versions, for the device's Python
# 3.12); they are installed into /tmp/site, not over the device's own torch. The table is
# printed as each configuration finishes, so a run cut short still reports what it measured;
# the JSON rows go to $OUT/gpu_bench.json, and py-spy --gil profiles of each served load (server
# and model process; py-spy's wheel carried in .whl/) with their summaries and the servers' logs
# to $OUT/profiles.tgz.
set -euo pipefail
export PYTHONPATH="/tmp/site:$PWD/src" PATH="/tmp/site/bin:$PATH" HF_HUB_OFFLINE=1
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# fail at once, not after the plain baselines, if a package the server needs is missing
python3 -c "import imagehub.api.app, imagehub.engines.diffusers.engine, diffusers, uvicorn, \
sqlalchemy, alembic, sse_starlette, multipart, jsonschema, pydantic_settings, fastapi"
if [ "${1:-throughput}" = speed ]; then
  exec timeout "${BENCH_TIMEOUT_S:-480}" python3 bench/speed_options.py --batch 16 --runs 10
fi
if [ "${1:-throughput}" = breakdown ] || [ "${1:-throughput}" = all ]; then
  timeout "${BREAKDOWN_TIMEOUT_S:-200}" python3 bench/engine_breakdown.py --batch 32 --runs 5 \
    --trace "${OUT:-/tmp}" || echo "engine_breakdown.py ended with status $?"
  [ "$1" = all ] || exit 0
fi
if [ "${1:-throughput}" = isolation ]; then
  exec timeout "${BENCH_TIMEOUT_S:-480}" python3 bench/engine_isolation.py --device cuda
fi
out="${OUT:-/tmp}/gpu_bench.json"
# $OUT brings back at most 8 files: the profiles and the servers' logs travel as one archive,
# made on exit, so a run stopped by its timeout still brings them back
pack() {
  mkdir -p "${OUT:-/tmp}/profiles"
  for log in /tmp/imagehub-gpu-bench-*/hub-*/server.log; do
    [ -e "$log" ] && cp "$log" "${OUT:-/tmp}/profiles/$(basename "$(dirname "$log")").server.log"
  done
  tar -C "${OUT:-/tmp}" -czf "${OUT:-/tmp}/profiles.tgz" profiles && rm -rf "${OUT:-/tmp}/profiles"
}
trap pack EXIT
compiled='"compile": "regional", "cuda_graphs": true, "channels_last": true, "tiny_vae": "TAESD"'
compiled_no_vae='"compile": "regional", "cuda_graphs": true'
if [ "${1:-throughput}" = sdxl ]; then  # not exec: the EXIT trap packs the profiles
  timeout "${BENCH_TIMEOUT_S:-480}" python3 bench/gpu_throughput.py --families sdxl \
    --seconds "${BENCH_SECONDS:-20}" --runs 5 --batches 4,8,16 --max-batch 16 \
    --deadline-s "${BENCH_DEADLINE_S:-300}" --out "$out" --py-spy "${OUT:-/tmp}/profiles" \
    --served '{}' "{$compiled, \"warmup_batches\": [1, 8, 16]}"
  exit
fi
if [ "${1:-throughput}" = replicas ]; then
  two="{$compiled, \"warmup_batches\": [1, 8, 16, 32], \"replicas\": 2}"
  timeout "${BENCH_TIMEOUT_S:-470}" python3 bench/gpu_throughput.py \
    --seconds "${BENCH_SECONDS:-10}" --runs 25 --batches 32,64 --max-batch 32 \
    --deadline-s "${BENCH_DEADLINE_S:-370}" --out "$out" \
    --served "$two" "{$compiled, \"warmup_batches\": [1, 8, 16, 32]}" \
      "{$compiled, \"warmup_batches\": [1, 8, 16, 24], \"replicas\": 3, \"max_batch\": 24}" \
      "$two"
  exit
fi
if [ "${1:-throughput}" = flux ]; then
  timeout "${BENCH_TIMEOUT_S:-560}" python3 bench/gpu_throughput.py --families flux-schnell \
    --seconds "${BENCH_SECONDS:-20}" --runs 5 --batches 4,8 --max-batch 8 --clients 16 \
    --deadline-s "${BENCH_DEADLINE_S:-330}" --out "$out" --py-spy "${OUT:-/tmp}/profiles" \
    --served "{$compiled_no_vae, \"warmup_batches\": [1, 4, 8]}" '{}'
  exit
fi
small="{$compiled, \"warmup_batches\": [1, 4, 8, 12, 16]"
timeout "${BENCH_TIMEOUT_S:-480}" python3 bench/gpu_throughput.py \
  --seconds "${BENCH_SECONDS:-10}" --runs 25 --batches 16,32,64 --max-batch 16 \
  --deadline-s "${BENCH_DEADLINE_S:-330}" --out "$out" \
  --served "$small, \"replicas\": 2}" "$small}" "$small, \"replicas\": 2}" \
           "$small, \"handoff\": true}"
