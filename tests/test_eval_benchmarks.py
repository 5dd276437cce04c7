"""Named benchmarks: their defaults sit beneath the recipe, and their files load with the right mapping."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from rlsp.config import load_recipe
from rlsp.config.benchmark_presets import BENCHMARKS
from rlsp.config.schema import EvalConfig
from rlsp.data import load_examples
from rlsp.errors import ConfigError, DataError


def test_schema_lists_every_benchmark():
    annotation = EvalConfig.__pydantic_fields__["benchmark"].annotation
    (literal,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    assert set(typing.get_args(literal)) == set(BENCHMARKS)


def test_recipe_values_win_over_benchmark_defaults(tmp_path):
    recipe = load_recipe(
        None,
        ["eval.benchmark=math500", f"eval.data_dir={tmp_path}", "data.source=/my/copy.jsonl",
         "generation.max_new_tokens=4096", "verifier.kwargs.timeout_s=2.0"],
    )
    assert recipe.data.source == "/my/copy.jsonl"  # no file lookup when a source is given
    assert recipe.data.prompt_field == "problem" and recipe.data.reference_field == "answer"
    assert recipe.generation.max_new_tokens == 4096
    assert recipe.verifier.function == "math"
    assert recipe.verifier.kwargs == {"answer_format": "boxed", "timeout_s": 2.0}
    assert recipe.eval.group_by == ["subject", "level"]


def test_benchmark_file_found_under_data_dir(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "1+1?", "answer": "so\\n#### 2"}\n')
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("eval:\n  benchmark: gsm8k\n  data_dir: .\n")  # relative to the recipe
    recipe = load_recipe(recipe_file)
    assert Path(recipe.data.source) == (tmp_path / "gsm8k" / "test.jsonl").resolve()
    assert recipe.data.reference_format == "gsm8k"
    examples = load_examples(recipe.data, 0, tmp_path).examples
    assert [(e.prompt, e.reference) for e in examples] == [("1+1?", "2")]


def test_unknown_benchmark_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown benchmark 'math50'\. Did you mean 'math500'\?"):
        load_recipe(None, ["eval.benchmark=math50"])


def test_missing_benchmark_file_says_what_to_pass(tmp_path):
    with pytest.raises(DataError) as info:
        load_recipe(None, ["eval.benchmark=aime24", f"eval.data_dir={tmp_path}"])
    message = str(info.value)
    assert str(tmp_path / "aime24" / "test.jsonl") in message
    assert "data.source=HuggingFaceH4/aime_2024 data.split=train" in message
    assert "data.source=/path/to/aime24/test.jsonl" in message


def test_builtin_source_contradicting_the_benchmark_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="contradicts eval.benchmark='math500'"):
        load_recipe(None, ["eval.benchmark=math500", "data.source=builtin:arith"])
    with pytest.raises(ConfigError, match="contradicts eval.benchmark='arith'"):
        load_recipe(None, ["eval.benchmark=arith", "data.source=x.jsonl"])


def test_arith_benchmark_is_the_heldout_split_by_level():
    recipe = load_recipe(None, ["eval.benchmark=arith", "data.arith.heldout_size=6"])
    examples = load_examples(recipe.data, 0).examples
    assert len(examples) == 6 and recipe.eval.group_by == ["level"]
    assert {e.columns["level"] for e in examples} == {2, 3}


@pytest.mark.parametrize(
    "name, size, columns",
    [("math500", 500, {"subject", "level"}), ("gsm8k", 1319, set()), ("aime24", 30, {"id"})],
)
def test_shared_benchmark_files_load_with_their_mapping(shared_data, monkeypatch, name, size, columns):
    monkeypatch.setenv("RLSP_DATA_DIR", str(shared_data))
    recipe = load_recipe(None, [f"eval.benchmark={name}"])
    data = load_examples(recipe.data, 0)
    assert len(data.examples) == size and data.skipped == 0
    assert columns <= set(data.examples[0].columns)
    if name == "aime24":
        assert "025" in {e.reference for e in data.examples}  # zero-padded in the file
    if name == "gsm8k":
        assert data.examples[0].reference == "18"


RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("eval_*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_eval_recipes_load_with_their_benchmark(shared_data, monkeypatch, path):
    monkeypatch.setenv("RLSP_DATA_DIR", str(shared_data))
    recipe = load_recipe(path)
    assert recipe.eval.benchmark is not None
    assert load_examples(recipe.data, 0, path.parent).examples


def test_aime_answers_compare_as_integers():
    from rlsp.data import Example
    from rlsp.generation import Completion
    from rlsp.scoring.verifier import build_verifier

    recipe = load_recipe(None, ["eval.benchmark=aime24", "data.source=aime.jsonl"])
    verifier = build_verifier(recipe.verifier, None)
    examples = [Example("p", "025"), Example("p", "25"), Example("p", "025"), Example("p", "073")]
    texts = ["so \\boxed{25}", "\\boxed{025}", "\\boxed{52}", "\\boxed{73}"]
    verdicts = verifier.verify(examples, [Completion(t, "stop", 5) for t in texts])
    assert [v.score for v in verdicts] == [1.0, 1.0, 0.0, 1.0]
