#!/usr/bin/env bash
# Issue 14's GPU rows in one run (one H200, under 6 minutes): training throughput of today's LeBel recipe against
# every lever and the 10 s window recipe (benchmarks/training_speed.py), the ridge table against himalaya
# (benchmarks/ridge.py, the ridge engineer's command), kernel timings (attention: SDPA vs flex block-sparse band;
# positional convolution: cuDNN vs FFT vs im2col; the frozen CNN; benchmarks/kernels.py), DDP at world size 1 vs none
# and the all-reduce model (benchmarks/ddp_overhead.py), the audio-video model before/after (benchmarks/av_throughput.py).
# Peak memory per segment-second is a column of the training and AV tables.
#
#   benchmarks/gpu_suite.sh                  # on the GPU machine: writes $OUT/gpu_results.md (OUT defaults to runs/gpu_suite)
#   CPU_SMOKE=1 benchmarks/gpu_suite.sh      # every section at tiny sizes on CPU: checks the script before device time
#
# Each section has its own time limit (a section that overruns keeps the rows it printed) and the whole suite a
# budget (SUITE_BUDGET_S, default 330 s); sections run in priority order. Nothing is downloaded: when a module is
# missing and wheels/ exists (e.g. `pip download himalaya==0.4.11 --no-deps -d wheels/`), it is installed from there
# with --no-index. RIDGE_CMD overrides the ridge command.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=${CPU_SMOKE:-0}
OUT=${OUT:-$PWD/runs/gpu_suite}
mkdir -p "$OUT"
RESULTS="$OUT/gpu_results.md"
if [ -x .venv/bin/python ]; then PY=${PY:-.venv/bin/python}; else PY=${PY:-python3}; fi
BUDGET=${SUITE_BUDGET_S:-330}
START=$SECONDS
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
if [ "$SMOKE" = 1 ]; then export CUDA_VISIBLE_DEVICES=""; fi

# --- ridge: the ridge engineer's GPU command (benchmarks/ridge.py docstring / RESULTS.md "## Ridge (issue 14)") -----
RIDGE_GPU_CMD="$PY benchmarks/ridge.py --device cuda --targets 80000 300000 --repeat 1"
RIDGE_SMOKE_CMD="$PY benchmarks/ridge.py --device cpu --samples 300 --test 100 --features 32 --targets 500 --repeat 1 --methods braintune himalaya:backend=numpy"

section() {  # section NAME LIMIT_S COMMAND...: run with a time limit inside the remaining budget, append to RESULTS
    local name=$1 limit=$2; shift 2
    local left=$((BUDGET - (SECONDS - START)))
    [ "$limit" -gt "$left" ] && limit=$left
    {
        echo
        echo "## $name"
        echo
        echo "\`$*\` (limit ${limit} s)"
        echo
    } >>"$RESULTS"
    if [ "$limit" -le 5 ]; then
        echo "skipped: the suite's budget of ${BUDGET} s is spent" | tee -a "$RESULTS"
        return
    fi
    local t0=$SECONDS log="$OUT/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_').log"
    timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    local keep='^\||^[A-Za-z0-9]'
    [ $rc -ne 0 ] && keep='^\||^[A-Za-z0-9]|^row: '  # rows printed before a time limit stopped the section
    grep -E "$keep" "$log" | grep -v -E "Warning|warn|Traceback|File \"|^row: .*\| recipe \|" >>"$RESULTS"
    echo >>"$RESULTS"
    if [ $rc -ne 0 ]; then
        echo "**exit $rc after $((SECONDS - t0)) s** (124: time limit); last lines:" >>"$RESULTS"
        echo '```' >>"$RESULTS"; tail -n 8 "$log" >>"$RESULTS"; echo '```' >>"$RESULTS"
    fi
    echo "[$name] exit $rc in $((SECONDS - t0)) s (suite at $((SECONDS - START)) s)"
}

preflight() {  # the environment, and modules the suite imports (installed from wheels/ when missing and present)
    {
        echo "# GPU suite (issue 14), $(date -u +%Y-%m-%dT%H:%MZ)"
        echo
        echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty); mode: $([ "$SMOKE" = 1 ] && echo CPU_SMOKE || echo GPU)"
        $PY -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
    } >"$RESULTS" 2>&1
    local missing
    missing=$($PY - <<'EOF'
import importlib.util
names = {"himalaya": "himalaya", "omegaconf": "omegaconf", "soundfile": "soundfile", "h5py": "h5py", "scipy": "scipy",
         "sklearn": "scikit-learn", "yaml": "pyyaml", "matplotlib": "matplotlib", "peft": "peft", "lightning": "lightning",
         "torchmetrics": "torchmetrics"}
print(" ".join(pkg for mod, pkg in names.items() if importlib.util.find_spec(mod) is None))
EOF
)
    if [ -n "$missing" ] && [ -d wheels ]; then
        echo "installing from wheels/ (no index): $missing" | tee -a "$RESULTS"
        $PY -m pip install --quiet --no-index --find-links wheels $missing >>"$OUT/pip.log" 2>&1 || echo "pip failed: see $OUT/pip.log" | tee -a "$RESULTS"
    elif [ -n "$missing" ]; then
        echo "missing modules and no wheels/: $missing" | tee -a "$RESULTS"
    fi
    $PY -c "import braintune.training.module" >>"$OUT/import.log" 2>&1 || { echo "import braintune.training.module failed:" >>"$RESULTS"; tail -n 3 "$OUT/import.log" >>"$RESULTS"; }
}

preflight
if [ "$SMOKE" = 1 ]; then
    section "Training throughput (LeBel recipe, levers, 10 s windows)" 300 $PY -m benchmarks.training_speed --tiny --steps 1 --windows 2 --rows 0,2,5
    section "Ridge vs himalaya" 300 $RIDGE_SMOKE_CMD
    section "Kernels (attention, positional convolution, CNN)" 300 $PY -m benchmarks.kernels --small --repeat 1
    section "DDP at world size 1 and the all-reduce model" 300 $PY -m benchmarks.ddp_overhead --tiny --steps 1
    section "Audio-video model" 300 $PY -m benchmarks.av_throughput --tiny --steps 1
else
    section "Training throughput (LeBel recipe, levers, 10 s windows)" 140 $PY -m benchmarks.training_speed --steps 5
    section "Ridge vs himalaya" 75 ${RIDGE_CMD:-$RIDGE_GPU_CMD}
    section "Kernels (attention, positional convolution, CNN)" 40 $PY -m benchmarks.kernels --repeat 5
    section "DDP at world size 1 and the all-reduce model" 45 $PY -m benchmarks.ddp_overhead --steps 5
    section "Audio-video model" 45 $PY -m benchmarks.av_throughput --steps 3
fi
echo "suite done in $((SECONDS - START)) s: $RESULTS"
