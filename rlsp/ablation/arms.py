"""What an ablation runs: arms from ``--set KEY=V1,V2``, seeds, and one folder per run.

Layout under the output folder::

    seed0/sft/                   the warm-start of seed 0 (shared by every arm of that seed)
    seed0/alpha.start=1.0/       one RL run per arm and seed
    seed0/alpha.start=0.8/
    comparison/                  what ``comparison`` writes

Every arm of a seed starts from the same warm-start and sees the same data order (``run.seed``),
so the arms differ only in what ``--set`` changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlsp.config.loading import parse_yaml
from rlsp.errors import ConfigError


@dataclass(frozen=True)
class Arm:
    name: str  # folder name and legend label, e.g. "alpha.start=1.0"
    overrides: tuple[str, ...]  # the recipe overrides that make this arm


@dataclass(frozen=True)
class PlannedRun:
    arm: Arm
    seed: int
    run_dir: Path
    sft_dir: Path | None  # the warm-start this run starts from; None: the recipe's own model


@dataclass(frozen=True)
class AblationPlan:
    recipe: Path
    out_dir: Path
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    common: tuple[str, ...] = ()  # overrides every arm gets
    sft_recipe: Path | None = None
    sft_overrides: tuple[str, ...] = ()

    def sft_dir(self, seed: int) -> Path | None:
        return self.out_dir / f"seed{seed}" / "sft" if self.sft_recipe else None

    @property
    def runs(self) -> list[PlannedRun]:
        """Seed by seed, every arm within a seed: a stopped ablation has whole seeds to compare."""
        return [PlannedRun(arm, seed, self.out_dir / f"seed{seed}" / arm.name, self.sft_dir(seed))
                for seed in self.seeds for arm in self.arms]

    def train_overrides(self, run: PlannedRun) -> list[str]:
        model = [f"model.name_or_path={run.sft_dir}"] if run.sft_dir else []
        return [*self.common, *run.arm.overrides, *model, f"run.seed={run.seed}", f"run.output_dir={run.run_dir}"]

    def sft_command_overrides(self, seed: int) -> list[str]:
        return [*self.sft_overrides, f"run.seed={seed}", f"run.output_dir={self.sft_dir(seed)}"]


def parse_arms(sets: list[str]) -> tuple[Arm, ...]:
    """``["train.reward.alpha.start=1.0,0.8"]`` -> two arms. Several ``--set`` options give every
    combination of their values."""
    if not sets:
        raise ConfigError("--set: give the setting the arms differ in, e.g. --set train.reward.alpha.start=1.0,0.8")
    axes: dict[str, list[tuple[str, str]]] = {}
    for item in sets:
        key, sep, values = item.partition("=")
        key, parts = key.strip(), [v.strip() for v in values.split(",")]
        if not sep or not key or "" in parts:
            raise ConfigError(f"--set {item!r}: write KEY=VALUE1,VALUE2 (comma-separated values, none empty), "
                              "e.g. train.reward.alpha.start=1.0,0.8")
        if key in axes:  # the later --set would win in every arm: twice the runs, half of them repeats
            raise ConfigError(f"--set {key}: given twice; put all its values in one --set {key}=V1,V2,...")
        seen: dict[str, str] = {}
        for value in parts:  # compared as the recipe reads them: 0.1 and 0.10 are one value, so one arm
            read = repr(_parsed(value))
            if read in seen:
                raise ConfigError(f"--set {item!r}: a value is repeated ({seen[read]} and {value} are the same); "
                                  "each arm needs its own value.")
            seen[read] = value
        axes[key] = [(key, v) for v in parts]
    arms = tuple(Arm(" ".join(f"{_short(k)}={v}" for k, v in combo), tuple(f"{k}={v}" for k, v in combo))
                 for combo in itertools.product(*axes.values()))
    if len(arms) < 2:
        raise ConfigError(f"--set {' '.join(sets)}: that is one arm; give at least two values to compare, "
                          "e.g. train.reward.alpha.start=1.0,0.8")
    return arms


def _parsed(value: str):
    """The value as the recipe loader reads it; text that is not YAML stays text (the recipe check names it)."""
    try:
        return parse_yaml(value)
    except yaml.YAMLError:
        return value


def check_own_settings(plan: AblationPlan) -> None:
    """Refuse a setting that rlsp ablate replaces in every run, which would otherwise be dropped
    without a word: each run's seed, its folder and, with --sft, the model it trains."""
    owned = {"run.seed": "each run's seed comes from --seeds", "run.output_dir": "each run's folder is under --out"}
    train_owned = {**owned, "model.name_or_path": "with --sft every arm trains from its seed's warm-start"} \
        if plan.sft_recipe else owned
    given = [("--set", o, train_owned) for arm in plan.arms for o in arm.overrides]
    given += [("override", o, train_owned) for o in plan.common] + [("--sft-set", o, owned) for o in plan.sft_overrides]
    for flag, item, taken in given:
        key = item.partition("=")[0].strip()
        if key in taken:
            raise ConfigError(f"{flag} {key}: rlsp ablate sets {key} of every run itself ({taken[key]}); remove it.")
    if plan.sft_overrides and not plan.sft_recipe:
        raise ConfigError("--sft-set: there is no --sft recipe for it to change; add --sft SFT_RECIPE, or drop "
                          "--sft-set (the arms then start from the RL recipe's model).")


def _short(key: str) -> str:
    """The last two parts of a dotted key: enough to tell arms apart in a folder name or legend."""
    return ".".join(key.split(".")[-2:])
