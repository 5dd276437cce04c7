"""The defences experiment's table (table.md) and figure (caps_defences.png) from results.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def write_report(results: dict, out: Path) -> None:
    base = results["base"]
    lines = [
        "## SFT on upper-cased answers: trait expression on held-out questions (no training prompt)",
        "",
        ("| arm | caps share | projection on caps vector | first -> last loss | mean trait push (-g . v_hat) "
         "| wall time |"),
        "|---|---|---|---|---|---|",
        f"| base model (before) | {base['caps_share']:.3f} | {base['projection']:+.2f} | | | |",
    ]
    for name, arm in results["sft"].items():
        push = sum(d["trait_push"] for d in arm["diagnostics"]) / len(arm["diagnostics"])
        lines.append(f"| {name} | {arm['after']['caps_share']:.3f} | {arm['after']['projection']:+.2f} | "
                     f"{arm['loss_first']:.2f} -> {arm['loss_last']:.2f} | {push:+.2e} | {arm['seconds']:.0f} s |")
    cos = results["gradient_cosines_on_one_batch"]
    lines += ["", "Gradient cosines on one batch of the base model: "
              + ", ".join(f"{k.replace('_vs_', ' vs ')} {v:.3f}" for k, v in cos.items()) + "."]
    if "rl" in results:
        lines += ["", "## RL with a reward for capital letters (arithmetic task)", "",
                  ("| arm | caps share of rollouts by step | held-out caps share after | held-out accuracy "
                   "| wall time |"),
                  "|---|---|---|---|---|"]
        for name, arm in results["rl"].items():
            steps = " ".join(f"{v:.2f}" for v in arm["caps_share_by_step"].values())
            acc = arm["heldout_accuracy"]
            lines.append(f"| {name} | {steps} | {arm['after']['caps_share']:.3f} | {acc[0]:.2f} -> {acc[1]:.2f} | "
                         f"{arm['seconds']:.0f} s |")
    vector = results["vector"]
    lines += ["", (f"Vector: layer {vector['layer']}, norm {vector['norm']:.2f}, separation d "
                   f"{vector['separation_d']:.2f}; total wall time {results.get('wall_seconds', 0):.0f} s.")]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "caps_defences.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results["sft"])
    panels = 4 if "rl" in results else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6))
    names = ["base"] + arms
    caps = [results["base"]["caps_share"]] + [results["sft"][a]["after"]["caps_share"] for a in arms]
    axes[0].bar(names, caps, color=["grey", "tab:red", "tab:blue", "tab:green"][: len(names)])
    axes[0].set(title="caps share of held-out answers", ylim=(0, 1))
    proj = [results["base"]["projection"]] + [results["sft"][a]["after"]["projection"] for a in arms]
    axes[1].bar(names, proj, color=["grey", "tab:red", "tab:blue", "tab:green"][: len(names)])
    axes[1].set(title="projection on the caps vector")
    for arm, color in zip(arms, ["tab:red", "tab:blue", "tab:green"], strict=False):
        diag = results["sft"][arm]["diagnostics"]
        axes[2].plot([d["optimizer_step"] for d in diag], [d["trait_push"] for d in diag], label=arm, color=color)
    axes[2].axhline(0, color="black", linewidth=0.5)
    axes[2].set(title="trait push -g . v_hat (SFT)", xlabel="optimizer step")
    axes[2].legend()
    if "rl" in results:
        for arm, color in zip(results["rl"], ["tab:red", "tab:blue"], strict=False):
            by_step = results["rl"][arm]["caps_share_by_step"]
            axes[3].plot([int(s) for s in by_step], list(by_step.values()), marker="o", label=arm, color=color)
        axes[3].set(title="RL: caps share of rollouts", xlabel="step", ylim=(0, 1))
        axes[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/defences_caps")
    write_report(json.loads((out / "results.json").read_text()), out)
