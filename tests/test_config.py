"""Recipes: every shipped recipe validates; bad files and values give clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rlsp.config import load_recipe
from rlsp.config.explain import explain
from rlsp.config.recipe import Recipe
from rlsp.errors import ConfigError

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def written_values(data: dict, prefix: str = "") -> dict:
    """Dotted key -> value for every leaf a recipe file writes (lists of sections expanded)."""
    flat = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "kwargs":
            flat.update(written_values(value, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                flat.update(written_values(item, f"{path}.{i}."))
        else:
            flat[path] = value
    return flat


def value_at(recipe, dotted: str):
    node = dataclasses.asdict(recipe)
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_loads_with_the_values_it_writes(path):
    from rlsp.config.loading import read_yaml_mapping

    recipe = load_recipe(path)
    written = written_values(read_yaml_mapping(path))
    assert written, f"{path} sets nothing"
    assert {key: value_at(recipe, key) for key in written} == written


def test_the_recipes_the_readme_runs_are_shipped():
    assert {"demo_rlsp.yaml", "demo_eval.yaml", "sft_demo.yaml"} <= {p.name for p in RECIPES}


def test_defaults_and_values(tmp_path):
    recipe = load_recipe(write(tmp_path, "generation:\n  temperature: 0.7\n  max_new_tokens: 64\n"))
    assert recipe.generation.temperature == 0.7
    assert recipe.generation.max_new_tokens == 64
    assert recipe.generation.top_p == 1.0  # default kept
    assert recipe.model.name_or_path == "smollm2-135m-instruct"


def test_recipe_is_frozen(tmp_path):
    recipe = load_recipe(write(tmp_path, ""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.generation.temperature = 2.0


def test_overrides_parse_yaml_values(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "data:\n  limit: 5\n"),
        ["data.limit=7", "data.arith.levels=[1, 4]", "model.name_or_path=/some/dir", "data.system_prompt=Think."],
    )
    assert recipe.data.limit == 7
    assert recipe.data.arith.levels == [1, 4]
    assert recipe.model.name_or_path == "/some/dir"
    assert recipe.data.system_prompt == "Think."


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("model:\n  name_or_pth: x\n", [], "model.name_or_pth: unknown key. Did you mean 'name_or_path'?"),
        ("genration: {}\n", [], "genration: unknown key. Did you mean 'generation'?"),
        ("generation:\n  max_new_tokens: many\n", [], "generation.max_new_tokens: Input should be a valid integer"),
        ("generation:\n  max_new_tokens: true\n", [], "generation.max_new_tokens: Input should be a valid integer"),
        ("generation:\n  top_p: 1.5\n", [], "generation.top_p: Input should be less than or equal to 1"),
        ("generation:\n  temperature: -0.1\n", [],
         "generation.temperature: Input should be greater than or equal to 0"),
        ("data:\n  arith:\n    levels: [1, 9]\n", [], "data.arith.levels.1: Input should be less than or equal to 6"),
        ("data:\n  reference_format: latex\n", [],
         "data.reference_format: Input should be 'plain', 'gsm8k' or 'boxed'"),
        ("model: 3\n", [], "model: expected a mapping"),
        ("", ["generation.temperature"], "is not of the form section.key=value"),
        ("", ["generation.tempreature=1"], "generation.tempreature: unknown key. Did you mean 'temperature'?"),
    ],
)
def test_bad_values_name_the_field(tmp_path, text, overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_recipe(write(tmp_path, text), overrides)
    assert expected in str(info.value)
    # A malformed override is named as such; any other problem names the recipe file first.
    where = "override " if "not of the form" in expected else f"{tmp_path / 'recipe.yaml'}: "
    assert str(info.value).startswith(where), str(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="recipe file .*nope.yaml' not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_yaml_syntax_error_gives_line(tmp_path):
    with pytest.raises(ConfigError, match=r"YAML syntax error at line 3"):
        load_recipe(write(tmp_path, "data:\n  limit: [1\n"))


def test_explain_lists_every_field_with_help():
    text = explain(Recipe)
    assert "generation.top_p (float, default 1.0): Nucleus sampling mass." in text
    assert "data.arith.heldout_size" in text


def test_training_sections(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "rewards:\n  - {function: length, channel: exploration, weight: 0.5}\n"),
        ["train.adam_betas=[0.9, 0.99]", "model.lora.enabled=true", "heldout.split=heldout"],
    )
    assert recipe.rewards[0].channel == "exploration" and recipe.rewards[0].weight == 0.5
    assert recipe.train.adam_betas == [0.9, 0.99] and recipe.model.lora.enabled
    assert recipe.heldout.split == "heldout" and recipe.heldout.source == "builtin:arith"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("rewards=[{function: length, channel: explore}]",
         "rewards.0.channel: Input should be 'verifier' or 'exploration'"),
        ("rewards=[{channel: exploration}]", "rewards.0.function: required field is missing"),
        ("train.adam_betas=[0.9]", "train.adam_betas: List should have at least 2 items"),
        ("train.reward.alpha.start=1.5", "train.reward.alpha.start: Input should be less than or equal to 1"),
    ],
)
def test_bad_training_values(tmp_path, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(write(tmp_path, ""), [override])


def test_exponent_floats_without_a_dot(tmp_path):
    recipe = load_recipe(write(tmp_path, "train:\n  actor_lr: 2e-5\n"), ["train.critic_lr=1e-6"])
    assert recipe.train.actor_lr == 2e-5 and recipe.train.critic_lr == 1e-6
    assert load_recipe(write(tmp_path, "run:\n  output_dir: 1e5-run\n")).run.output_dir == "1e5-run"
