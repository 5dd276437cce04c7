"""The "Write your own reward" example in the README works as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlsp.config import load_recipe
from rlsp.scoring.channels import build_reward_functions, channel_totals, score_all

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def block(first_line: str) -> str:
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", README, flags=re.DOTALL):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"README has no code block starting with {first_line!r}")


def test_readme_reward_example(tmp_path):
    (tmp_path / "my_rewards.py").write_text(block("# my_rewards.py"))
    (tmp_path / "my_recipe.yaml").write_text(block("# my_recipe.yaml"))
    recipe = load_recipe(tmp_path / "my_recipe.yaml")
    functions = build_reward_functions(recipe.rewards, tmp_path)
    completions = ["12 + 7 = 19\nSo 19", "I think it is 20", "2 + 2 = 4, 4 + 4 = 8, 8 = 8, so 8"]
    results = score_all(functions, ["q"] * 3, completions, ["19", "19", None], {})
    assert results["exact_integer"].scores[:2].tolist() == [1.0, 0.0]
    assert not results["exact_integer"].applicable[2]  # None: no reference
    # kwargs from the recipe: per_line=0.2; three "= <digit>" in the last completion
    assert results["shows_work"].scores.tolist() == pytest.approx([0.2, 0.0, 0.6])
    totals = channel_totals(functions, results)
    assert totals["verifier"][0] == 1.0
    assert float(totals["exploration"][2]) < 0.5 * 0.6 + 1e-6  # the repetition guard can only subtract
