"""The whole recipe: one section per concern, every one optional with defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .fields import option, section
from .loading import apply_overrides, build_section, read_yaml_mapping
from .schema import DataConfig, EvalConfig, GenerationConfig, ModelConfig, RunConfig, VerifierConfig


@section
class Recipe:
    run: RunConfig = option(RunConfig, help="Output directory and seed.")
    model: ModelConfig = option(ModelConfig, help="The policy model.")
    data: DataConfig = option(DataConfig, help="Prompt dataset and how its columns map.")
    generation: GenerationConfig = option(GenerationConfig, help="Sampling settings.")
    verifier: VerifierConfig = option(VerifierConfig, help="Outcome verifier used for accuracy.")
    eval: EvalConfig = option(EvalConfig, help="Evaluation settings.")


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Load and validate a recipe file; ``overrides`` are ``section.key=value`` strings."""
    path = Path(path)
    data = apply_overrides(read_yaml_mapping(path), overrides)
    return build_section(Recipe, data, "", str(path))


def output_dir(recipe: Recipe, recipe_path: str | Path) -> Path:
    return Path(recipe.run.output_dir.format(recipe=Path(recipe_path).stem))
