"""The whole recipe: one section per concern, every one optional with defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from rlsp.config.algorithm_defaults import resolve_algorithm_defaults
from rlsp.config.benchmark_presets import with_benchmark_defaults
from rlsp.config.fields import option, section
from rlsp.config.loading import apply_overrides, build_section, read_yaml_mapping
from rlsp.config.schema import (
    DataConfig,
    EvalConfig,
    GenerationConfig,
    HookSpec,
    ModelConfig,
    RunConfig,
    SteerConfig,
    VerifierConfig,
)
from rlsp.config.sft_schema import SFTConfig
from rlsp.config.train_schema import RewardSpec, TrainConfig
from rlsp.errors import ConfigError
from rlsp.plugins import import_plugin_module


@section
class Recipe:
    run: RunConfig = option(RunConfig, help="Output directory and seed.")
    model: ModelConfig = option(ModelConfig, help="The policy model.")
    data: DataConfig = option(DataConfig, help="Prompt dataset and how its columns map.")
    generation: GenerationConfig = option(GenerationConfig, help="Sampling settings.")
    verifier: VerifierConfig = option(VerifierConfig, help="Outcome verifier used for accuracy.")
    eval: EvalConfig = option(EvalConfig, help="Evaluation settings.")
    heldout: DataConfig | None = option(
        None,
        help="Held-out prompts evaluated before, during and after training; for 'builtin:arith' "
        "data it defaults to the same task's held-out split.",
    )
    rewards: list[RewardSpec] = option(list, help="Reward functions, each feeding the verifier or exploration channel.")
    train: TrainConfig = option(TrainConfig, help="PPO training settings.")
    sft: SFTConfig = option(SFTConfig, help="SFT warm-start on long chains of thought (rlsp sft).")
    steer: SteerConfig = option(SteerConfig, help="Steering-vector extraction (rlsp steer extract).")
    hooks: list[HookSpec] = option(
        list, help="Trainer hooks run at events of rlsp train and rlsp sft (see rlsp/hooks/events.py)."
    )


def load_recipe(path: str | Path | None, overrides: Iterable[str] = ()) -> Recipe:
    """Load and validate a recipe file; ``overrides`` are ``section.key=value`` strings.

    ``path`` None builds the recipe from its defaults and the overrides alone (``rlsp eval
    --benchmark math500``). A recipe naming ``eval.benchmark`` gets that benchmark's data file,
    fields and verifier as defaults; anything the recipe or an override sets wins.
    """
    if path is None:
        data, source, base_dir = {}, "command line", Path.cwd()
    else:
        path = Path(path)
        data, source, base_dir = read_yaml_mapping(path), str(path), path.resolve().parent
    data = with_benchmark_defaults(apply_overrides(data, overrides), base_dir)
    recipe = build_section(Recipe, data, "", source)
    for ref in recipe.train.plugins:  # before the algorithm names are looked up: they may register some
        try:
            import_plugin_module(ref, base_dir, "train.plugins", ConfigError)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    return dataclasses.replace(recipe, train=resolve_algorithm_defaults(recipe.train, source))


def output_dir(recipe: Recipe, recipe_path: str | Path) -> Path:
    return Path(recipe.run.output_dir.format(recipe=Path(recipe_path).stem))
