"""Print the demo's stage-by-stage table and add the stages to runs/demo/summary.json.

    python launch/demo_report.py runs/demo [--seconds N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=None, help="Wall time of the whole demo.")
    args = parser.parse_args()
    base = json.loads((args.run_dir / "eval_base" / "eval_summary.json").read_text())["metrics"]
    summary_path = args.run_dir / "summary.json"
    rl = json.loads(summary_path.read_text())
    stages = [
        ("base model", base["accuracy"], base["boxed_rate"]),
        ("after SFT warm-start", rl["heldout_accuracy_before"], rl["heldout_boxed_rate_before"]),
        ("after RLSP", rl["heldout_accuracy_after"], rl["heldout_boxed_rate_after"]),
    ]
    print(f"\nheld-out arithmetic, {rl['heldout_size']} problems, greedy")
    print(f"{'stage':<24}{'accuracy':>10}{'boxed rate':>12}")
    for name, accuracy, boxed in stages:
        print(f"{name:<24}{accuracy:>10.3f}{boxed:>12.3f}")
    rl["stages"] = [{"stage": n, "accuracy": a, "boxed_rate": b} for n, a, b in stages]
    if args.seconds is not None:
        rl["demo_wall_seconds"] = args.seconds
    summary_path.write_text(json.dumps(rl, indent=2) + "\n")
    print(f"\nRL wall time {rl['wall_seconds']:.0f} s; TensorBoard: tensorboard --logdir {args.run_dir}/tensorboard")


if __name__ == "__main__":
    main()
