#!/usr/bin/env bash
# One prepared GPU run: what the port's speed settings do on a real GPU, in JSON lines.
#
#   OUT=DIR bash tools/gpu_check.sh            # on the GPU host, from anywhere; ~8 min at most
#   GPU_CHECK_SMOKE=1 bash tools/gpu_check.sh   # tiny networks and budgets: checks the script
#   bash tools/gpu_check.sh --help             # this text; it takes no other arguments
#
# Writes $OUT/gpu_check.jsonl (<repo>/gpu_check_out/ when OUT is unset), one JSON object a
# line, each with "check" naming it:
#   nvidia_smi   the GPU, driver, memory and compute capability, first
#   setup        Python, TF, whether a venv was made, the port's hardware_summary()
#   benchmark    tools/benchmark.py for quickstart.gin (sndcgan, MNIST shape 32x32x1) and
#                cifar10/ssgan.gin with ssgan.disc_iters=5 (32x32x3), each in
#                float32, mixed_bfloat16 and float32 + XLA; "result" is its JSON line
#                (mixed_bfloat16 on a GPU without native bf16, before Ampere: a skipped
#                line, as the port refuses it there)
#   train        real training runs (python -m ssgan_tf.main) on the built-in MNIST, ~70 s
#                each: "train_quickstart" (quickstart.gin) and "train_resnet" (cifar10/ssgan.gin,
#                its own disc_iters 2, on MNIST's 32x32x1: no TFDS on an offline host),
#                total_steps sized from that config's float32 benchmark rate above
#   summary      wall time, and which checks passed
# plus gpu_check.log (every step's stderr) and the training run's last sample grid.
# A failed or timed-out step gets its line (rc, timed_out, stderr tail) and the rest go on.
# It refuses to start (exit 1) when that folder holds an earlier gpu_check.jsonl or .log:
# move them away or pick another OUT. When it stops early (no venv, failed install or
# import: exit 3; no GPU: exit 2) it says why in a last JSON line and an `error:` line on
# stderr.
#
# Time: the whole script, install included, stops within GPU_CHECK_TOTAL_S (470 s): every
# step runs under its own `timeout`, cut to what is left, keeping TRAIN_TIMEOUT_S back for
# each training run; a step with under 30 s left is skipped (a line says so). Each benchmark
# gets --max_seconds = its timeout minus STARTUP_S (30 s: TF import, GPU init, model build,
# FLOP count), so it stops itself and reports budget_exhausted rather than being killed.
#
# Install: if importing requirements.txt's packages fails, a venv is made at GPU_CHECK_VENV
# (/tmp/ssgan_gpu_venv) with `pip install -r requirements.txt tensorflow[and-cuda]==2.21.0`
# (the extra exists on PyPI for 2.21.0: it pulls the nvidia-*-cu12 CUDA 12 / cuDNN 9 wheels,
# ~3-4 GB). RISKS:
#   * no internet on the GPU host: pip fails within ~1 minute and the script stops with a
#     setup line. Then pre-download the wheels on a machine with network for the host's
#     Python and platform (pip download -d DIR -r requirements.txt "tensorflow[and-cuda]==2.21.0"
#     --python-version 3.12 --only-binary=:all: --platform manylinux_2_27_x86_64 ...) and
#     pass GPU_CHECK_WHEELHOUSE=DIR (installs with --no-index --find-links DIR).
#   * the requirements' pins are tested on Python 3.11; another Python may lack a pinned
#     wheel (pip then fails in the setup line).
#   * the install can take most of the time budget on a slow link: raise GPU_CHECK_TOTAL_S.
#   * TF 2.21 needs CUDA 12 libraries: a host with only CUDA 13 ones (e.g. a PyTorch cu13
#     image) sees no GPU unless [and-cuda] installed; the setup line then says gpus: [] and
#     the script stops (outside smoke mode) rather than timing the CPU.
# Overrides: GPU_CHECK_PYTHON (an interpreter that has the requirements), GPU_CHECK_ONLY (a
# regex on the check names, e.g. 'resnet|train'), GPU_CHECK_WORKDIR (where the run's own
# scratch folder, gpu_check.XXXXXX, is made and left; default /tmp),
# GPU_CHECK_BENCH_TIMEOUT_S (every benchmark's timeout; default 35-100 s, XLA's longest).
# Exit status: 0 every selected check passed; 4 one failed or none was selected; 1-3 above;
# 143 (SIGTERM) or 130 (Ctrl-C): stopped from outside, the running step with it.
# On Ampere and later GPUs TensorFlow runs float32 matmuls and convolutions in TF32 by
# default: the setup line's "tf32" says whether it was on, and so what "float32" measured.
set -uo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  "") ;;
  *) echo "error: unknown argument '$1'; gpu_check.sh takes settings from the environment" \
          "(OUT, GPU_CHECK_*): see bash tools/gpu_check.sh --help" >&2; exit 1 ;;
esac

# Paths the caller gives are read from the caller's directory, before the cd below.
for setting in OUT GPU_CHECK_WORKDIR GPU_CHECK_WHEELHOUSE; do
  [ -n "${!setting:-}" ] && printf -v "$setting" '%s' "$(realpath -m "${!setting}")"
done
# Links kept (-s): a venv's python is a link to the system's, which lacks the venv's packages.
[[ "${GPU_CHECK_PYTHON:-}" == */* ]] && GPU_CHECK_PYTHON=$(realpath -ms "$GPU_CHECK_PYTHON")
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT_DIR="${OUT:-$ROOT/gpu_check_out}"
JSONL="$OUT_DIR/gpu_check.jsonl"
LOG="$OUT_DIR/gpu_check.log"
for earlier in "$JSONL" "$LOG"; do
  if [ -e "$earlier" ]; then
    echo "error: $earlier exists (an earlier run's results); move it away, or set OUT to" \
         "another folder" >&2
    exit 1
  fi
done
mkdir -p "$OUT_DIR" && : >"$JSONL" && : >"$LOG" || exit 1
# The training workdir holds dozens of files: kept outside $OUT, whose copy-back is small.
# A fresh folder of its own: the script never deletes anything it did not make.
mkdir -p "${GPU_CHECK_WORKDIR:-/tmp}" \
  && WORK=$(mktemp -d "${GPU_CHECK_WORKDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
echo "scratch: $WORK" | tee -a "$LOG" >&2

SMOKE="${GPU_CHECK_SMOKE:-0}"
ONLY="${GPU_CHECK_ONLY:-.}"
START=$(date +%s)
TOTAL_S="${GPU_CHECK_TOTAL_S:-470}"
INSTALL_TIMEOUT_S=300
# Each benchmark's timeout: (35 + 35 + 50) + (45 + 50 + 100) + 2 x 70 s of training + ~15 s
# of setup = 470 s, cut to TOTAL_S by the deadline. The tiny quickstart networks step in
# milliseconds (start-up is most of their run); the ResNet needs longer; XLA most, as its
# compilation (and the GPU's autotuning) happens in the first warm-up step, which counts
# against --max_seconds and cannot be interrupted.
declare -A BENCH_TIMEOUT_S=([quickstart_float32]=35 [quickstart_mixed_bfloat16]=35
                            [quickstart_float32_xla]=50 [resnet_float32]=45
                            [resnet_mixed_bfloat16]=50 [resnet_float32_xla]=100)
STARTUP_S=30          # TF import, GPU init, model build, FLOP count: before --max_seconds.
TRAIN_TIMEOUT_S=70    # Each run: start-up + ~TRAIN_STEP_SECONDS of steps.
TRAIN_STEP_SECONDS=45
WARMUP=10
STEPS=200
if [ "$SMOKE" = 1 ]; then
  TOTAL_S="${GPU_CHECK_TOTAL_S:-900}"
  for name in "${!BENCH_TIMEOUT_S[@]}"; do BENCH_TIMEOUT_S[$name]=100; done
  TRAIN_TIMEOUT_S=100
  WARMUP=1
  STEPS=2
fi
if [ -n "${GPU_CHECK_BENCH_TIMEOUT_S:-}" ]; then
  for name in "${!BENCH_TIMEOUT_S[@]}"; do
    BENCH_TIMEOUT_S[$name]=$GPU_CHECK_BENCH_TIMEOUT_S
  done
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"

# JSON lines come from a stdlib-only helper, so they are written even without TF.
emit() {  # emit CHECK NAME RC WALL_S STDOUT_FILE STDERR_FILE [EXTRA_JSON]
  python3 - "$@" >>"$JSONL" <<'EOF'
import json, sys
check, name, rc, wall, out_path, err_path = sys.argv[1:7]
extra = json.loads(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[7] else {}
def read(path):
  try:
    with open(path, errors="replace") as f:
      return f.read()
  except OSError:
    return ""
out, err = read(out_path), read(err_path)
record = {"check": check, "name": name, "rc": int(rc), "timed_out": int(rc) in (124, 137),
          "wall_s": float(wall)}
last = out.strip().splitlines()[-1] if out.strip() else ""
try:
  record["result"] = json.loads(last)
except ValueError:
  if last:
    record["stdout_tail"] = out[-1500:]
if int(rc) != 0:
  record["stderr_tail"] = err[-1500:]
record.update(extra)
print(json.dumps(record))
EOF
}

line() {  # line KEY=VALUE...: appends one JSON object; a VALUE that is JSON (true, 3)
  python3 - "$@" >>"$JSONL" <<'EOF'
import json, sys
def value(text):
  try:
    return json.loads(text)
  except ValueError:
    return text
print(json.dumps({k: value(v) for k, v in (a.split("=", 1) for a in sys.argv[1:])}))
EOF
}

stop() {  # stop EXIT_CODE CHECK REASON: a last JSON line and an `error:` line, then exit.
  line "check=$2" ok=false "reason=$3"
  echo "error: $3 (details: $JSONL, $LOG)" >&2
  exit "$1"
}

remaining() { echo $(( TOTAL_S - ($(date +%s) - START) )); }

# Stopped from outside (SIGTERM, Ctrl-C): the running step is stopped too, not left behind.
STEP_PID=
on_signal() {  # on_signal NAME EXIT_CODE
  [ -n "$STEP_PID" ] && kill -TERM "$STEP_PID" 2>/dev/null && wait "$STEP_PID"
  echo "error: stopped by SIG$1; the results so far are in $JSONL" >&2
  exit "$2"
}
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT

# run_step NAME TIMEOUT_S CMD...: runs CMD under `timeout`, stdout/stderr to $WORK/NAME.*;
# sets RC and WALL.
run_step() {
  local name=$1 limit=$2
  shift 2
  echo "=== $name (timeout ${limit}s): $*" | tee -a "$LOG" >&2
  local t0 t1
  t0=$(date +%s.%N)
  # In the background, so that a signal to the script runs its trap at once (bash runs
  # traps only between foreground commands); `timeout` passes the trap's TERM on.
  timeout -k 5 "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  STEP_PID=$!
  wait "$STEP_PID"
  RC=$?
  STEP_PID=
  t1=$(date +%s.%N)
  WALL=$(python3 -c "print(round($t1 - $t0, 2))")
  cat "$WORK/$name.err" >>"$LOG"
  echo "=== $name: rc $RC in ${WALL}s" | tee -a "$LOG" >&2
}

selected() { [[ "$1" =~ $ONLY ]]; }

# ---------------------------------------------------------------- nvidia-smi, first
if command -v nvidia-smi >/dev/null; then
  if SMI=$(timeout 30 nvidia-smi --format=csv,noheader \
           --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm 2>&1); then
    line check=nvidia_smi available=true "line=$SMI"
  elif SMI=$(timeout 30 nvidia-smi -L 2>&1); then
    line check=nvidia_smi available=true "line=$SMI" query_failed=true
  else
    line check=nvidia_smi available=false "line=$SMI"
  fi
else
  line check=nvidia_smi available=false
fi

# ---------------------------------------------------------------- setup
TRAINS=0  # Selected training runs: their time is kept back from every step before them.
for config in quickstart resnet; do selected "train_$config" && TRAINS=$((TRAINS + 1)); done
PY="${GPU_CHECK_PYTHON:-python3}"
MADE_VENV=false
INSTALL_S=0
# What requirements.txt installs and the runs below import. TF-GAN's package __init__
# fails on TF >= 2.16 (no tf.estimator): the port loads its modules (evaluation/tfgan.py).
if ! timeout 120 "$PY" -c "import tensorflow, keras, gin, absl, tensorboard, numpy, PIL, \
tensorflow_datasets, mlxtend, tensorflow_probability, tensorflow_hub, scipy, sklearn, \
matplotlib, ssgan_tf.evaluation.tfgan" 2>/dev/null; then
  VENV="${GPU_CHECK_VENV:-/tmp/ssgan_gpu_venv}"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" 2>>"$LOG" \
    || stop 3 setup "python3 -m venv failed (install python3-venv)"
  PY="$VENV/bin/python"
  PIP_ARGS=(-q --retries 1 --timeout 20)
  if [ -n "${GPU_CHECK_WHEELHOUSE:-}" ]; then
    PIP_ARGS+=(--no-index --find-links "$GPU_CHECK_WHEELHOUSE")
  fi
  LIMIT=$(( $(remaining) - TRAINS * TRAIN_TIMEOUT_S ))
  (( LIMIT > INSTALL_TIMEOUT_S )) && LIMIT=$INSTALL_TIMEOUT_S
  run_step install "$LIMIT" "$PY" -m pip install "${PIP_ARGS[@]}" -r requirements.txt \
    "tensorflow[and-cuda]==2.21.0"
  INSTALL_S=$WALL
  MADE_VENV=true
  if [ "$RC" != 0 ]; then
    emit setup install "$RC" "$WALL" "$WORK/install.out" "$WORK/install.err" \
      '{"ok": false, "reason": "pip install failed: no network? see the script header (GPU_CHECK_WHEELHOUSE)"}'
    echo "error: pip install failed: no network? see GPU_CHECK_WHEELHOUSE in --help" \
         "(details: $JSONL, $LOG)" >&2
    exit 3
  fi
fi
SETUP=$(timeout 120 "$PY" - <<'EOF' 2>>"$LOG"
import json, platform
from ssgan_tf import cpu_kernels
cpu_kernels.prefer_onednn()  # As the benchmarks and training runs below do.
import tensorflow as tf
from ssgan_tf import precision
print(json.dumps({"python": platform.python_version(), "tf": tf.__version__,
                  "cuda_build": tf.sysconfig.get_build_info().get("cuda_version"),
                  "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
                  **precision.hardware_summary()}))
EOF
)
[ -n "$SETUP" ] || stop 3 setup "importing tensorflow / ssgan_tf failed; see gpu_check.log"
python3 - "$SETUP" "$MADE_VENV" "$INSTALL_S" "$PY" >>"$JSONL" <<'EOF'
import json, sys
setup = json.loads(sys.argv[1])
print(json.dumps({"check": "setup", "ok": True, "made_venv": sys.argv[2] == "true",
                  "install_s": float(sys.argv[3]), "python_path": sys.argv[4], **setup}))
EOF
if [ "$SMOKE" != 1 ] && ! python3 -c 'import json, sys; sys.exit(not json.loads(sys.argv[1])["gpus"])' "$SETUP"; then
  stop 2 summary "TensorFlow sees no GPU: not timing the CPU (GPU_CHECK_SMOKE=1 would)"
fi

# ---------------------------------------------------------------- benchmarks
QUICKSTART=(--gin_file=gin_configs/quickstart.gin --resolution=32 --channels=1)
RESNET=(--gin_file=gin_configs/cifar10/ssgan.gin --gin_param=ssgan.disc_iters=5
        --resolution=32 --channels=3)
# Smoke mode's tiny widths and batches (seconds per step on a CPU), for each config's
# benchmarks and training run.
QUICKSTART_SMOKE=('--gin_param=networks.generator_kwargs={"base_channels": 8}'
                  '--gin_param=networks.discriminator_kwargs={"base_channels": 8}'
                  --gin_param=ssgan.global_batch_size=8)
RESNET_SMOKE=('--gin_param=networks.generator_kwargs={"g_channels": 16}'
              '--gin_param=networks.discriminator_kwargs={"d_channels": 16}'
              --gin_param=ssgan.global_batch_size=8 --gin_param=ssgan.rotated_batch_size=8)
if [ "$SMOKE" = 1 ]; then
  QUICKSTART+=("${QUICKSTART_SMOKE[@]}")
  RESNET+=("${RESNET_SMOKE[@]}")
fi
declare -A PRECISION_FLAGS=([float32]="--precision=float32"
                            [mixed_bfloat16]="--precision=mixed_bfloat16"
                            [float32_xla]="--precision=float32 --xla")
declare -A RATE=()  # config -> float32 gen steps/s, for the training runs' lengths.
PASSED=()
FAILED=()
for config in quickstart resnet; do
  for variant in float32 mixed_bfloat16 float32_xla; do
    name="${config}_${variant}"
    selected "$name" || continue
    LIMIT=$(( $(remaining) - TRAINS * TRAIN_TIMEOUT_S - 10 ))
    OWN=${BENCH_TIMEOUT_S[$name]}
    (( LIMIT > OWN )) && LIMIT=$OWN
    if (( LIMIT < 30 )); then
      line check=benchmark "name=$name" skipped=true "reason=under 30 s left"
      FAILED+=("$name")
      continue
    fi
    MAX_S=$(( LIMIT - STARTUP_S ))
    (( MAX_S < 1 )) && MAX_S=1
    [ "$SMOKE" = 1 ] && MAX_S=2  # Below the first (tracing) step: exercises the budget.
    [ "$config" = quickstart ] && ARGS=("${QUICKSTART[@]}") || ARGS=("${RESNET[@]}")
    # shellcheck disable=SC2206  # The variant's flags are meant to split.
    ARGS+=(${PRECISION_FLAGS[$variant]} "--warmup=$WARMUP" "--steps=$STEPS"
           "--max_seconds=$MAX_S")
    run_step "$name" "$LIMIT" "$PY" tools/benchmark.py "${ARGS[@]}"
    if [ "$variant" = mixed_bfloat16 ] && [ "$RC" != 0 ] \
        && grep -q "bf16 is emulated there" "$WORK/$name.err"; then
      # A GPU before Ampere (T4, V100): precision.py refuses emulated bf16.
      line check=benchmark "name=$name" skipped=true \
        "reason=$(grep -m1 "^error: " "$WORK/$name.err" | sed -e 's/^error: //' -e 's/; use .*//')"
      continue
    fi
    emit benchmark "$name" "$RC" "$WALL" "$WORK/$name.out" "$WORK/$name.err"
    if [ "$RC" = 0 ]; then PASSED+=("$name"); else FAILED+=("$name"); fi
    if [ "$variant" = float32 ] && [ "$RC" = 0 ]; then
      RATE[$config]=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["gen_steps_per_sec"])' "$WORK/$name.out")
    fi
  done
done

# ---------------------------------------------------------------- training runs
declare -A TRAIN_GIN=([quickstart]=gin_configs/quickstart.gin [resnet]=gin_configs/cifar10/ssgan.gin)
for config in quickstart resnet; do
  name="train_$config"
  selected "$name" || continue
  LIMIT=$(( $(remaining) - 10 ))
  (( LIMIT > TRAIN_TIMEOUT_S )) && LIMIT=$TRAIN_TIMEOUT_S
  if (( LIMIT < 30 )); then
    line check=train "name=$name" skipped=true "reason=under 30 s left"
    FAILED+=("$name")
    continue
  fi
  # The built-in MNIST (32x32x1) for both: an offline host has no TFDS CIFAR-10.
  TRAIN_ARGS=('--gin_param=dataset.name="mnist"')
  if [ "$SMOKE" = 1 ]; then
    TOTAL_STEPS=4
    if [ "$config" = quickstart ]; then
      TRAIN_ARGS+=("${QUICKSTART_SMOKE[@]}")
    else
      TRAIN_ARGS+=("${RESNET_SMOKE[@]}")
    fi
    TRAIN_ARGS+=(--gin_param=train.log_every=2 --gin_param=train.checkpoint_every=2
                 --gin_param=train.sample_every=2)
  else
    TRAIN_ARGS+=(--gin_param=train.log_every=100)
    # Steps for ~TRAIN_STEP_SECONDS at half the benchmark's rate (the real run also feeds
    # data, logs, checkpoints and writes sample grids), in whole logging intervals; 500
    # when no rate was measured (the run shows how far it gets in its time).
    TOTAL_STEPS=$(python3 -c "r = '${RATE[$config]:-}'; print(max(200, min(50000, int(float(r) * 0.5 * $TRAIN_STEP_SECONDS) // 100 * 100)) if r else 500)")
  fi
  run_step "$name" "$LIMIT" "$PY" -m ssgan_tf.main "--gin_file=${TRAIN_GIN[$config]}" \
    --workdir="$WORK/$name" "--gin_param=train.total_steps=$TOTAL_STEPS" "${TRAIN_ARGS[@]}"
  EXTRA=$(python3 - "$WORK/$name.err" "$WORK/$name" "$TOTAL_STEPS" "$OUT_DIR" "$name" <<'EOF'
import glob, json, os, re, shutil, sys
err_path, workdir, total_steps, out_dir, name = sys.argv[1:6]
progress = [l for l in open(err_path, errors="replace").read().splitlines()
            if re.search(r"step \d+/\d+ .* steps/s", l)]
checkpoints = sorted(glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.index")))
grids = sorted(glob.glob(os.path.join(workdir, "samples", "*.png")))
if grids:
  shutil.copy(grids[-1], os.path.join(out_dir, f"{name}_{os.path.basename(grids[-1])}"))
last = progress[-1] if progress else ""
match = re.search(r"step (\d+)/\d+\s+([\d.]+) steps/s", last)
print(json.dumps({
    "total_steps": int(total_steps), "last_progress": last[last.find("step "):],
    "last_step": int(match.group(1)) if match else None,
    "last_steps_per_sec": float(match.group(2)) if match else None,
    "checkpoints": [os.path.basename(c)[:-len(".index")] for c in checkpoints],
    "sample_grids": len(grids),
    "operative_config": os.path.exists(os.path.join(workdir, "operative_config.gin"))}))
EOF
)
  emit train "$name" "$RC" "$WALL" "$WORK/$name.out" "$WORK/$name.err" "$EXTRA"
  if [ "$RC" = 0 ]; then PASSED+=("$name"); else FAILED+=("$name"); fi
done

python3 - "$(( $(date +%s) - START ))" "$SMOKE" "${#FAILED[@]}" "${PASSED[*]:-}" \
  "${FAILED[*]:-}" >>"$JSONL" <<'EOF'
import json, sys
wall, smoke, n_failed, passed, failed = sys.argv[1:6]
print(json.dumps({"check": "summary", "ok": n_failed == "0" and bool(passed.split()),
                  "wall_s": int(wall), "smoke": smoke == "1", "passed": passed.split(),
                  "failed": failed.split()}))
EOF
echo "wrote $JSONL" >&2
if (( ${#FAILED[@]} > 0 || ${#PASSED[@]} == 0 )); then
  echo "error: ${#FAILED[@]} check(s) failed, ${#PASSED[@]} passed (GPU_CHECK_ONLY='$ONLY')" >&2
  exit 4
fi
