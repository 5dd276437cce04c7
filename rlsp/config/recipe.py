"""The whole recipe: one section per concern, every one optional with defaults."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .fields import option, section
from .loading import apply_overrides, build_section, read_yaml_mapping
from .schema import DataConfig, EvalConfig, GenerationConfig, ModelConfig, RunConfig, VerifierConfig
from .sft_schema import SFTConfig
from .train_schema import RewardSpec, TrainConfig


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


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Load and validate a recipe file; ``overrides`` are ``section.key=value`` strings."""
    path = Path(path)
    data = apply_overrides(read_yaml_mapping(path), overrides)
    from ..benchmarks import with_benchmark_defaults  # benchmarks imports this module

    # A recipe naming eval.benchmark gets that benchmark's data file, fields and verifier as
    # defaults; anything the recipe or an override sets wins.
    data = with_benchmark_defaults(data, path.resolve().parent)
    return build_section(Recipe, data, "", str(path))


def output_dir(recipe: Recipe, recipe_path: str | Path) -> Path:
    return Path(recipe.run.output_dir.format(recipe=Path(recipe_path).stem))
