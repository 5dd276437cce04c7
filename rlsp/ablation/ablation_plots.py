"""``ablation.png``: the arms' per-step curves (mean over seeds, min-max band) and held-out accuracy.

Seven panels over training steps (response length, sampled accuracy, backtracking and
verification sentences per 1k tokens and share of samples, both reward channels) and one of
held-out accuracy before and after RL with a dot per seed.
"""

from __future__ import annotations

from pathlib import Path

from rlsp.ablation.run_results import RunResult, per_step

PANELS = (
    ("length_mean", "Response length", "tokens"),
    ("sampled_accuracy", "Training samples correct", "share"),
    ("backtracking_per_1k", "Backtracking sentences", "per 1k tokens"),
    ("verification_per_1k", "Verification sentences", "per 1k tokens"),
    ("backtracking_share", "Samples with backtracking", "share"),
    ("reward_verifier", "Verifier reward (raw)", "mean"),
    ("reward_exploration", "Exploration reward (raw)", "mean"),
)


def plot_ablation(results: list[RunResult], arms: list[str], path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    from rlsp.analysis.behaviour_plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, title, unit) in zip(axes.flat, PANELS, strict=False):
        for i, arm in enumerate(arms):
            points = per_step(results, arm).get(metric, {})
            if not points:
                continue
            x = sorted(points)
            mean, low, high = ([points[s][k] for s in x] for k in range(3))
            seeds = max(points[s][3] for s in x)
            ax.plot(x, mean, marker="o", ms=3, color=colours[i % len(colours)], label=f"{arm} (n={seeds})")
            if seeds > 1:
                ax.fill_between(x, low, high, color=colours[i % len(colours)], alpha=0.18, linewidth=0)
        ax.set(title=title, xlabel="training step", ylabel=unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.flat[0].legend(fontsize=8)
    _heldout_panel(axes.flat[7], results, arms, colours)
    fig.suptitle("Ablation: mean over seeds, band = min-max", fontsize=11)
    return save_figure(fig, path)


def _heldout_panel(ax, results: list[RunResult], arms: list[str], colours) -> None:
    """Held-out accuracy before and after RL: a dot per seed, a bar for the mean."""
    for i, arm in enumerate(arms):
        runs = [r for r in results if r.arm == arm]
        for j, values in enumerate(([r.heldout_before for r in runs], [r.heldout_after for r in runs])):
            known = [v for v in values if v is not None]
            x = i * 2.6 + j
            if known:
                ax.bar(x, sum(known) / len(known), color=colours[i % len(colours)], alpha=0.35 if j == 0 else 0.8,
                       label=arm if j == 1 else None)
                ax.scatter([x] * len(known), known, color="black", s=12, zorder=3)
    ax.set_xticks([i * 2.6 + j for i in range(len(arms)) for j in (0, 1)],
                  ["before", "after"] * len(arms), fontsize=8)
    ax.set(title="Held-out accuracy, before / after RL", ylabel="accuracy", ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
