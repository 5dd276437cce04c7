#!/usr/bin/env bash
# The main job (`make demo`): base model -> SFT warm-start -> RLSP PPO, on the CPU, with
# held-out accuracy and \boxed{} rate after each stage. Everything lands in runs/demo/.
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-runs/demo}

if [ -e "$OUT" ]; then
  echo "Moving the previous demo run to $OUT.previous"
  rm -rf "$OUT.previous" && mv "$OUT" "$OUT.previous"
fi
mkdir -p "$OUT"
start=$(date +%s)

echo "== 1/3 base model: held-out accuracy"
"$BIN/rlsp" eval recipes/demo_eval.yaml run.output_dir="$OUT/eval_base"
base_done=$(date +%s)

echo "== 2/3 SFT warm-start on 48 generated long-CoT arithmetic traces"
# Tens of examples, as in RLSP's first stage: enough to teach the format and the column method
# (held-out accuracy 0.47, \boxed{} rate 1.0) and leave the arithmetic itself to RL. The full
# recipe (160 traces) reaches 0.70 on its own and leaves RL less to do.
"$BIN/rlsp" sft recipes/sft_demo.yaml run.output_dir="$OUT/sft" sft.arith.size=48 sft.epochs=2
sft_done=$(date +%s)

echo "== 3/3 RLSP: PPO with verifier and exploration channels (evaluates before and after)"
"$BIN/rlsp" train recipes/demo_rlsp.yaml run.output_dir="$OUT" model.name_or_path="$OUT/sft"

rl_done=$(date +%s)

"$BIN/python" launch/demo_report.py "$OUT" --seconds $(( rl_done - start )) \
  --stage-seconds $(( base_done - start )) $(( sft_done - base_done )) $(( rl_done - sft_done ))

echo "== behaviour in the RL rollouts (backtracking, verification, ...): $OUT/inspect/report.html"
"$BIN/rlsp" inspect "$OUT" --top 1
