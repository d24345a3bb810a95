#!/usr/bin/env bash
# The whole GPU check in one go, on the device machine, from the repository root.
#
# Before: `.venv/bin/python benchmarks/gpu/prepare.py` here; then two device
# calls, one right after the other (a warm machine keeps what the first carried):
#   run(command="true", carry=[".whl/a"], timeout_s=60)
#   run(command="bash benchmarks/gpu/check.sh", carry=[".whl/b"], timeout_s=590)
# It installs the carried wheels into /tmp/site, says which device MLX uses,
# runs the exactness tests against MLX (eager and compiled, compile=True,
# metrics, per-parameter metrics against a hand computation, skip_nonfinite) on it, a short train() with the monitor writing a
# History, and every benchmark (benchmarks/run_all.py); what it measured
# lands in $OUT: check.log, tests.log, history.csv, monitor.png, run_all.md,
# run_all.csv. RUN_ALL_ARGS=--quick (a CPU rehearsal) passes --quick to run_all.py.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
export PYTHONUNBUFFERED=1
SECONDS=0
say() { echo "[check.sh ${SECONDS}s] $*"; }

read -r wheel digest < .whl/a/BACKEND_WHEEL || { say "no .whl/a: carry it in the call before"; exit 2; }
cat .whl/a/part-* $(compgen -G ".whl/b/part-*") > "/tmp/$wheel"
if [ "$(sha256sum "/tmp/$wheel" | cut -d' ' -f1)" != "$digest" ]; then
    say "$wheel does not match what prepare.py split: carry .whl/b in this call, right after .whl/a"
    exit 2
fi
say "installing $(ls .whl/a/*.whl | wc -l) wheels and $wheel into /tmp/site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/a/*.whl "/tmp/$wheel" || exit 2
# mlx finds the CUDA libraries through an rpath relative to its own
# site-packages; in /tmp/site they are not beside it, so point at the venv's.
site=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if compgen -G "$site/nvidia/*/lib" > /dev/null; then
    export LD_LIBRARY_PATH="$(printf '%s:' "$site"/nvidia/*/lib)${LD_LIBRARY_PATH:-}"
fi
export PYTHONPATH="/tmp/site:$PWD"
python3 - <<'PY' || exit 2
import mlx.core as mx
from multiopt_lab._src.device import describe_device, device_facts
print("default device:", mx.default_device(), "|", describe_device(), "|", device_facts())
PY

say "exactness and optimizer tests on the default device"
python3 -m pytest -q -p no:cacheprovider -x \
    tests/test_optimizer_exact.py tests/test_compiled_update.py tests/test_metrics.py \
    tests/test_nonfinite.py tests/test_fuzz_routing.py tests/test_optimizer.py \
    tests/test_parameter_metrics.py \
    2>&1 | tee "$OUT/tests.log" | tail -5

say "train() with the monitor, eager and compile=True"
python3 benchmarks/gpu/train_check.py --out "$OUT"

say "every benchmark (benchmarks/run_all.py)"
python3 benchmarks/run_all.py --out /tmp/bench ${RUN_ALL_ARGS:-}
cp /tmp/bench/run_all.md /tmp/bench/run_all.csv "$OUT"/ 2>/dev/null
say "done"
