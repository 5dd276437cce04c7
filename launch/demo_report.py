"""Print the demo's stage-by-stage table, add the stages to runs/demo/summary.json and plot
them with the RL run's per-step training curves in runs/demo/demo.png.

    python launch/demo_report.py runs/demo [--seconds N] [--stage-seconds BASE SFT RL]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=None, help="Wall time of the whole demo.")
    parser.add_argument("--stage-seconds", type=float, nargs=3, default=None, metavar=("BASE", "SFT", "RL"),
                        help="Wall time of each stage (the RL stage includes its two held-out evaluations).")
    args = parser.parse_args()
    base = json.loads((args.run_dir / "eval_base" / "eval_summary.json").read_text())["metrics"]
    summary_path = args.run_dir / "summary.json"
    rl = json.loads(summary_path.read_text())
    stages = [
        ("base model", base["accuracy"], base["boxed_rate"]),
        ("after SFT warm-start", rl["heldout_accuracy_before"], rl["heldout_boxed_rate_before"]),
        ("after RLSP", rl["heldout_accuracy_after"], rl["heldout_boxed_rate_after"]),
    ]
    seconds = args.stage_seconds or [None] * 3
    print(f"\nheld-out arithmetic, {rl['heldout_size']} problems, greedy")
    print(f"{'stage':<24}{'accuracy':>10}{'boxed rate':>12}{'wall s':>9}")
    for (name, accuracy, boxed), s in zip(stages, seconds, strict=True):
        print(f"{name:<24}{accuracy:>10.3f}{boxed:>12.3f}{'' if s is None else f'{s:>9.0f}'}")
    if "precision" in rl:
        print(f"precision {rl['precision']['compute']} ({rl['precision']['reason']}); CPU {rl['precision']['cpu']}")
    rl["stages"] = [{"stage": n, "accuracy": a, "boxed_rate": b, "wall_seconds": s}
                    for (n, a, b), s in zip(stages, seconds, strict=True)]
    if args.seconds is not None:
        rl["demo_wall_seconds"] = args.seconds
    summary_path.write_text(json.dumps(rl, indent=2) + "\n")
    plot(stages, per_step_means(args.run_dir / "rollouts.jsonl"), args.run_dir / "demo.png")
    print(f"\nRL wall time {rl['wall_seconds']:.0f} s; plot: {args.run_dir}/demo.png; "
          f"TensorBoard: tensorboard --logdir {args.run_dir}/tensorboard")


def per_step_means(rollouts: Path) -> dict[str, list[float]]:
    """Per training step: sampled verifier accuracy, mean completion length, and the exploration
    channel: its mean score and how much it varies between the answers to one prompt, which is
    all a group-relative estimator (RLOO) can learn from."""
    correct, length, exploration = defaultdict(list), defaultdict(list), defaultdict(lambda: defaultdict(list))
    if rollouts.exists():
        for line in rollouts.read_text().splitlines():
            record = json.loads(line)
            correct[record["step"]].append(record["rewards"]["verifier"] >= 1.0)
            length[record["step"]].append(record["length"])
            exploration[record["step"]][record.get("group", 0)].append(record["rewards"]["exploration"])
    steps = sorted(correct)
    mean = lambda xs: sum(xs) / len(xs)
    spread = lambda xs: (mean([(x - mean(xs)) ** 2 for x in xs])) ** 0.5
    return {"step": steps, "accuracy": [mean(correct[s]) for s in steps], "length": [mean(length[s]) for s in steps],
            "exploration": [mean([x for g in exploration[s].values() for x in g]) for s in steps],
            "exploration_within_prompt": [mean([spread(g) for g in exploration[s].values()]) for s in steps]}


def plot(stages, curves: dict[str, list[float]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4), layout="constrained")
    FigureCanvasAgg(fig)
    bars, train, explore = fig.subplots(1, 3)
    names, accuracies = [n for n, _, _ in stages], [a for _, a, _ in stages]
    bars.bar(names, accuracies, color=["#999999", "#4c72b0", "#dd8452"])
    for x, a in enumerate(accuracies):
        bars.text(x, a + 0.01, f"{a:.3f}", ha="center")
    bars.set_ylim(0, 1)
    bars.set_title("held-out accuracy (greedy)")
    if curves["step"]:
        # Each step samples only a few dozen completions: a 5-step running mean shows the trend.
        window = [sum(curves["accuracy"][max(0, i - 4): i + 1]) / len(curves["accuracy"][max(0, i - 4): i + 1])
                  for i in range(len(curves["step"]))]
        train.plot(curves["step"], curves["accuracy"], "o", alpha=0.35, label="sampled accuracy")
        train.plot(curves["step"], window, "-", label="5-step mean")
        train.set_xlabel("RL step")
        train.set_ylim(0, 1)
        lengths = train.twinx()
        lengths.plot(curves["step"], curves["length"], color="#55a868", alpha=0.6, label="mean length (tokens)")
        lengths.set_ylabel("tokens")
        train.legend(loc="lower left")
        lengths.legend(loc="lower right")
    train.set_title("RL training samples")
    if curves["step"]:
        explore.plot(curves["step"], curves["exploration"], "-o", label="mean exploration score")
        explore.plot(curves["step"], curves["exploration_within_prompt"], "-s",
                     label="spread between one prompt's answers (std)")
        explore.set_xlabel("RL step")
        explore.legend(loc="best")
    explore.set_title("exploration channel (raw, before gating)")
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
