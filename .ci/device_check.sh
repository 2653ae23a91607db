#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 17's speed check), in two halves.
#
#   bash .ci/device_check.sh prepare   # here: build the offline executable with its tests and
#                                      # the cpu reference curves (a few minutes on 2 cores)
#   then, with the device tool: run(command="bash .ci/device_check.sh device", carry=["dist"])
#
# The GPU machine has no Deno and no internet: dist/semiseg (self-extracting, ~35 MiB) carries
# Deno, the sources, the npm packages and tests/; dist/cpu_ref.json carries the cpu losses of
# the same seeds and steps; dist/torch_vnet.py is the PyTorch comparator. On the device it runs
# every webgpu test file against the cpu backend there, then the V-Net step at 64x64x48 b2 and
# 112x112x80 b4 on webgpu with its max rel loss diff against the carried cpu curve, and PyTorch
# CUDA (TF32 off and on) in the same run, with the ratios. Raw output goes to stdout and
# $OUT/device_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    set -e
    deno run -A benchmarks/compile.ts --out dist --with-tests
    cp ../shared/perf/torch_vnet.py dist/torch_vnet.py
    # The cpu reference of the webgpu steps below (same shapes, warm-up and runs).
    deno run -A benchmarks/perf.ts --shapes 64x64x48 --full --runs 3 --warmup 1 \
      --backends cpu --no-torch --no-profile --json dist/cpu_ref.json
    ls -la dist
    ;;
  device)
    log="${OUT:-.}/device_check.log"
    exe=dist/semiseg
    export XDG_CACHE_HOME="${TMPDIR:-/tmp}/semiseg-cache" SEMISEG_TORCH_VNET="$PWD/dist/torch_vnet.py"
    {
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
      "$exe" selftest
      "$exe" perf --shapes 64x64x48 --full --runs 3 --warmup 1 --backends webgpu \
        --compare dist/cpu_ref.json --torch-device cuda --mem-steps 20
    } 2>&1 | tee "$log"
    ;;
  *)
    echo "usage: bash .ci/device_check.sh prepare|device" >&2
    exit 2
    ;;
esac
