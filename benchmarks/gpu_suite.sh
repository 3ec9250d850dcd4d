#!/usr/bin/env bash
# One command that checks and measures lexilab on a CUDA machine (issue #13):
#   1. the gpu-marked tests (CUDA parity in fp32, bf16 smoke, pooling, generation, encoder-only),
#   2. the training-step benchmark (benchmarks/train_step.py),
#   3. the generation benchmark (benchmarks/generate.py), the Gramian-path benchmark for
#      gradient methods at T = 3 and 8 (benchmarks/gramian_methods.py) and the chunked
#      cross-entropy benchmark (benchmarks/cross_entropy.py),
#   4. a small multi-task study on real data, 2 arms x 2 seeds, `run --executor local` then
#      `report`, checking that the local pool pins every run to exactly one GPU (one at a time
#      per GPU),
# and writes one Markdown section (device, driver, versions, command, every figure) to
# OUT_DIR/gpu_suite.md, ready to paste into benchmarks/RESULTS.md.
#
#   bash benchmarks/gpu_suite.sh                      # CUDA, FLAN-T5-base dims; OUT_DIR = $OUT or ./gpu-suite
#   bash benchmarks/gpu_suite.sh --device cpu --tiny  # the same steps on CPU in a few minutes (CI)
#   options: --out DIR, --data DIR (default $LEXILAB_DATA or ../shared/data), --python PY
#
# A bare machine needs only this repository, the data folder and a Python whose torch has CUDA
# (plus lexilab's dependencies: a missing one is named in one line). lexilab runs from the
# checkout (PYTHONPATH), the spec, results and report go to a temporary folder, and nothing is
# installed or downloaded (HF_HUB_OFFLINE=1). Default interpreter: .venv/bin/python, else python3.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEVICE=cuda
TINY=""
OUT_DIR="${OUT:-$REPO/gpu-suite}"
DATA="${LEXILAB_DATA:-$REPO/../shared/data}"
PY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --tiny) TINY="--tiny"; shift ;;
        --out) OUT_DIR="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --python) PY="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu_suite: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_suite: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true TOKENIZERS_PARALLELISM=false
cd "$REPO"

# ---- an interpreter that has lexilab and its dependencies
if [ -z "$PY" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY="$(command -v python3)"; fi
fi
NEEDED="torch transformers safetensors tokenizers yaml submitit pandas numpy scipy statsmodels sklearn rouge_score tqdm matplotlib torchjd pytest"
missing() { "$1" -c "
import importlib.util, sys
print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))" $NEEDED; }
# lexilab itself runs from this checkout (also in the runs the local executor starts)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$(missing "$PY")" ]; then
    echo "gpu_suite: $PY lacks: $(missing "$PY")" >&2
    exit 3
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_suite: --device cuda but $("$PY" -c 'import torch; print("torch", torch.__version__)') sees no GPU (use --device cpu --tiny for the CPU mode)" >&2
    exit 3
fi
[ -d "$DATA/flan_t5_tokenizer" ] || { echo "gpu_suite: no data root at $DATA (pass --data DIR)" >&2; exit 3; }
DATA="$(cd "$DATA" && pwd)"
export LEXILAB_DATA="$DATA"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-suite.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
SECTION="$OUT_DIR/gpu_suite.md"
started=$(date +%s)
log() { echo "gpu_suite: $* ($(( $(date +%s) - started )) s)" >&2; }

# ---- 1. gpu-marked tests (on CPU they are collected and skip: the command itself is checked)
log "gpu-marked tests"
GPU_TESTS=$(grep -rl "mark.gpu" tests --include='test_*.py' | sort)
set +e
"$PY" -m pytest -q -p no:cacheprovider -m gpu $GPU_TESTS >"$WORK/tests.txt" 2>&1
tests_rc=$?
set -e
tests_summary=$(tail -n 1 "$WORK/tests.txt")

# ---- 2. and 3. benchmarks; one that fails is reported in the section and the others still run
failed=""
bench() {  # NAME SCRIPT ARGS...: writes $WORK/NAME.md (its section, or its error)
    local name="$1"; shift
    log "$name benchmark"
    if ! "$PY" "$@" --out "$WORK/$name.md" >/dev/null 2>"$WORK/$name.err"; then
        failed="$failed $name"
        { echo "### $name: FAILED"; echo; echo '```'; tail -n 20 "$WORK/$name.err"; echo '```'; } >"$WORK/$name.md"
    fi
}
bench train_step benchmarks/train_step.py --device "$DEVICE" $TINY --data "$DATA"
bench generate benchmarks/generate.py --device "$DEVICE" $TINY
bench gramian benchmarks/gramian_methods.py --device "$DEVICE" $TINY $([ -n "$TINY" ] && echo "--repeats 1")
bench cross_entropy benchmarks/cross_entropy.py --device "$DEVICE" $TINY $([ -n "$TINY" ] && echo "--chunks 64 --repeats 1")

# ---- 4. a 2 arms x 2 seeds study through the local executor, then its report
log "multi-task study (local executor)"
if [ -n "$TINY" ]; then
    DIMS="{d_model: 64, d_kv: 16, d_ff: 128, num_layers: 2, num_heads: 4}"; STEPS=4; BATCH=8; LEN=64; ROWS=64; EVAL=16
else
    DIMS="{d_model: 768, d_kv: 64, d_ff: 2048, num_layers: 12, num_heads: 12}"; STEPS=30; BATCH=32; LEN=256; ROWS=1024; EVAL=64
fi
PRECISION=$([ "$DEVICE" = cuda ] && echo bf16 || echo fp32)
cat >"$WORK/gpu_suite_study.yaml" <<EOF
name: gpu_suite_study
description: GPU suite smoke study - topic (AG News) and TLDR (SciTLDR) on a random FLAN-T5-shaped model
base:
  backbone:
    name: {vocab_size: 32128, feed_forward_proj: gated-gelu, ${DIMS:1:-1}}
    init: random
    tokenizer: data:flan_t5_tokenizer
  tasks:
    topic: {kind: multiclass, data: ag_news, pooling: mean, max_length: $LEN,
            limit: {train: $ROWS, val: $EVAL, calibration: $EVAL, test: $EVAL}}
    summary: {kind: seq2seq, data: scitldr, max_length: $LEN, max_target_length: 32,
              generation: {num_beams: 1, max_new_tokens: 16},
              limit: {train: $ROWS, val: $EVAL, calibration: $EVAL, test: $EVAL}}
  sampler: {kind: temperature, alpha: 0.5}
  optim: {lr: 1.0e-3, warmup_steps: 2}
  train: {epochs: 1, max_steps: $STEPS, batch_size: $BATCH, eval_batch_size: $EVAL, device: $DEVICE,
          precision: $PRECISION}
  tracking: {mlflow: false}
factors:
  weighting:
    equal: {weighting: {kind: equal}}
    uncertainty: {weighting: {kind: uncertainty}}
seeds: 2
report:
  metrics: [topic/accuracy, summary/rougeL]
  baseline: equal
EOF
PARALLEL=$([ "$DEVICE" = cpu ] && echo "--max-parallel 2" || echo "")
study_start=$(date +%s)
set +e  # a failed run or report is written into the section (the pinning check then fails)
"$PY" -m lexilab run "$WORK/gpu_suite_study.yaml" --executor local --wait $PARALLEL \
    --results "$WORK/results" >"$WORK/run.txt" 2>&1 || failed="$failed study-run"
study_seconds=$(( $(date +%s) - study_start ))
"$PY" -m lexilab report "$WORK/gpu_suite_study.yaml" --results "$WORK/results" --out "$WORK/report" \
    --no-figures --resamples 200 >"$WORK/report.txt" 2>&1 || { failed="$failed study-report"; tail -n 40 "$WORK/run.txt" >>"$WORK/report.txt"; }
"$PY" - "$WORK/results/gpu_suite_study" "$DEVICE" >"$WORK/pinning.md" <<'EOF'
"""Every run finished, each was pinned to one device, and runs on one device never overlapped."""
import json, sys
from pathlib import Path

root, device = Path(sys.argv[1]), sys.argv[2]
runs = sorted(p.parent for p in root.glob("*/seed-*/status.json"))
rows, problems = [], []
for run in runs:
    status = json.loads((run / "status.json").read_text())
    env = json.loads((run / "env.json").read_text()) if (run / "env.json").exists() else {}
    visible = status.get("cuda_visible_devices")
    rows.append((run.parent.name, run.name, status["state"], visible, env.get("device"), env.get("gpu"),
                 status["started"], status["finished"]))
    if status["state"] != "done":
        problems.append(f"{run}: {status['state']}")
    if device == "cuda" and (not visible or "," in visible or not env.get("device", "").startswith("cuda")):
        problems.append(f"{run}: CUDA_VISIBLE_DEVICES={visible!r}, device {env.get('device')!r}")
if len(runs) != 4:
    problems.append(f"{len(runs)} runs instead of 4")
if device == "cuda":
    by_gpu = {}
    for row in rows:
        by_gpu.setdefault(row[3], []).append((row[6], row[7]))
    for gpu, spans in by_gpu.items():
        spans.sort()
        if any(b[0] < a[1] for a, b in zip(spans, spans[1:])):
            problems.append(f"GPU {gpu}: runs overlapped")
print("| arm | seed | state | CUDA_VISIBLE_DEVICES | device | GPU | seconds |")
print("|---|---|---|---|---|---|---|")
for arm, seed, state, visible, dev, gpu, start, end in rows:
    print(f"| {arm} | {seed} | {state} | {visible!r} | {dev} | {gpu or '—'} | {end - start:.0f} |")
print()
print("Pinning check: " + ("passed (one device per run; runs on the same GPU one after the other)"
                            if not problems and device == "cuda" else
                            "passed (CPU: no GPU visible to any run)" if not problems else "FAILED: " + "; ".join(problems)))
sys.exit(1 if problems else 0)
EOF
pinning_rc=$?
set -e

# ---- the Markdown section
{
    echo "## GPU suite: $DEVICE$([ -n "$TINY" ] && echo ', tiny') ($(date -u +%Y-%m-%d))"
    echo
    echo "\`bash benchmarks/gpu_suite.sh --device $DEVICE $TINY\` at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(( $(date +%s) - started )) s in all"
    echo
    if [ "$DEVICE" = cuda ]; then
        echo "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || echo n/a)"
        echo
    fi
    echo "### gpu-marked tests"
    echo
    echo "\`pytest -m gpu $(echo $GPU_TESTS)\`: $tests_summary (exit $tests_rc)"
    echo
    sed 's/^### /#### /' "$WORK/train_step.md"
    echo
    sed 's/^### /#### /' "$WORK/generate.md"
    echo
    sed 's/^### /#### /' "$WORK/gramian.md"
    echo
    sed 's/^### /#### /' "$WORK/cross_entropy.md"
    echo
    echo "### Multi-task study through the local executor"
    echo
    echo "2 arms (equal, uncertainty weighting) × 2 seeds, AG News + SciTLDR, $STEPS steps each, $PRECISION, $study_seconds s for the 4 runs."
    echo
    cat "$WORK/pinning.md"
    echo
    echo '```'
    cat "$WORK/report.txt"
    echo '```'
} >"$SECTION"
log "wrote $SECTION"
if [ -n "$failed" ]; then
    echo "gpu_suite: failed:$failed (the errors are in $SECTION)" >&2
    exit 1
fi
if [ "$tests_rc" -ne 0 ] && [ "$tests_rc" -ne 5 ]; then
    echo "gpu_suite: gpu-marked tests failed (exit $tests_rc):" >&2
    tail -n 30 "$WORK/tests.txt" >&2
    exit 1
fi
exit "$pinning_rc"
