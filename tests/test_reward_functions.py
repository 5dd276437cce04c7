"""The reward-function registry, plug-in loader and safe caller."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rlsp_verifiers import Verdict

from rlsp.config import load_recipe
from rlsp.config.train_schema import RewardSpec
from rlsp.errors import ConfigError, RewardError
from rlsp.scoring import registry as reward_registry
from rlsp.scoring.channels import build_reward_functions, channel_totals, score_all
from rlsp.scoring.registry import load_reward_function, register_reward_function, registered_names
from rlsp.scoring.reward_function import RewardFunction

BUILTINS = [
    "math",
    "numeric",
    "string_match",
    "multiple_choice",
    "length",
    "length_linear",
    "steps",
    "backtracking",
    "repetition",
    "judge",
]


def Spec(function: str, channel: str = "verifier", **fields) -> RewardSpec:
    """A recipe's reward entry, as the recipe loader builds it."""
    return RewardSpec(function=function, channel=channel, **fields)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    monkeypatch.setattr(reward_registry, "_registered", {})


def returning(values):
    """A reward function that returns ``values`` whatever it is given."""

    def fn(prompts, completions, references, **columns):
        return values

    return fn


def make(fn, **spec) -> RewardFunction:
    register_reward_function("under_test")(fn)
    return RewardFunction(Spec("under_test", **spec))


def run(reward_function, batch=3, columns=None, completions=None):
    completions = completions or ["c"] * batch
    return reward_function(["p"] * len(completions), completions, ["r"] * len(completions), columns)


# --- registry and loader -----------------------------------------------------------------------


def test_every_builtin_resolves():
    assert set(BUILTINS) <= set(registered_names())
    for name in BUILTINS:
        assert callable(load_reward_function(name))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(
        RewardError, match="unknown reward function 'lenght'. Did you mean 'length'"
    ) as e:
        load_reward_function("lenght")
    assert "path/to/file.py:function" in str(e.value)
    with pytest.raises(RewardError, match="write 'rlsp_rewards.length:length'"):
        load_reward_function("rlsp_rewards.length.length")
    with pytest.raises(RewardError, match="names a file but no function"):
        load_reward_function("my_rewards.py")


def test_module_references():
    from rlsp_rewards.length import length_linear

    assert load_reward_function("rlsp_rewards.length:length_linear") is length_linear
    with pytest.raises(RewardError, match="no module named 'no_such_package'"):
        load_reward_function("no_such_package.rewards:fn")
    with pytest.raises(RewardError, match="has no function 'lenght'. Did you mean 'length'"):
        load_reward_function("rlsp_rewards.length:lenght")
    with pytest.raises(RewardError, match="is a tuple, not a function"):
        load_reward_function("rlsp_rewards.backtracking:BACKTRACKING_PHRASES")


USER_FILE = '''
from rlsp.scoring import register_reward_function


@register_reward_function("ends_politely")
def politeness(prompts, completions, references, *, bonus=1.0, **columns):
    """1 per completion ending with 'thanks', None when the prompt asks for no politeness."""
    pairs = zip(prompts, completions)
    return [None if "rude" in p else bonus * c.endswith("thanks") for p, c in pairs]


def helper_not_a_reward():
    pass
'''


def test_user_file_by_path_and_by_registered_name(tmp_path, monkeypatch):
    recipe_dir = tmp_path / "recipes"
    (recipe_dir / "rewards").mkdir(parents=True)
    (recipe_dir / "rewards" / "polite.py").write_text(USER_FILE)

    fn = load_reward_function(
        "rewards/polite.py:politeness", base_dir=recipe_dir
    )  # recipe-relative
    assert fn(["p", "rude"], ["ok thanks", "x"], ["", ""]) == [1.0, None]
    assert load_reward_function("ends_politely") is fn  # the file registered it on import
    monkeypatch.chdir(recipe_dir)
    assert load_reward_function("rewards/polite.py:politeness") is fn  # cwd-relative, loaded once
    assert load_reward_function(f"{recipe_dir}/rewards/polite.py:politeness") is fn  # absolute

    reward = RewardFunction(Spec("ends_politely", channel="exploration", kwargs={"bonus": 2.0}))
    result = reward(
        ["p", "rude", "p"],
        ["thanks", "thanks", "no"],
        ["", "", ""],
        {"completion_lengths": [1, 1, 1]},
    )
    assert reward.name == "ends_politely"
    assert result.scores.tolist()[0] == 2.0 and math.isnan(result.scores.tolist()[1])
    assert result.applicable.tolist() == [True, False, True]
    assert (
        RewardFunction(Spec("rewards/polite.py:politeness"), base_dir=recipe_dir).name
        == "politeness"
    )


def test_user_file_errors(tmp_path):
    with pytest.raises(RewardError, match="not found; looked for .*missing.py.* Relative paths"):
        load_reward_function("missing.py:fn", base_dir=tmp_path)
    (tmp_path / "polite.py").write_text(USER_FILE)
    with pytest.raises(
        RewardError,
        match=r"has no function 'polite'\. Did you mean 'politeness'\? "
        "It defines: helper_not_a_reward, politeness",
    ):
        load_reward_function("polite.py:polite", base_dir=tmp_path)
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(
        RewardError, match="importing reward function file .*broken.py failed: ModuleNotFoundError"
    ):
        load_reward_function("broken.py:fn", base_dir=tmp_path)


def test_register_conflicts():
    def a(prompts, completions, references, **columns):
        return [0.0] * len(completions)

    def b(prompts, completions, references, **columns):
        return [1.0] * len(completions)

    register_reward_function("mine")(a)
    register_reward_function("mine")(a)  # the same function again (a module re-imported) is fine
    with pytest.raises(ConfigError, match="already registered"):
        register_reward_function("mine")(b)
    with pytest.raises(ConfigError, match="built-in"):
        register_reward_function("length")(b)


# --- spec validation at load time --------------------------------------------------------------


def test_spec_validation(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rewards: [{function: length, channel: exploration, weight: .inf}]\n")
    with pytest.raises(ConfigError, match="rewards.0.weight: Input should be a finite number"):
        load_recipe(recipe)
    with pytest.raises(ConfigError, match="unknown option 'c'. Did you mean 'C'"):
        RewardFunction(Spec("length", kwargs={"c": 100}))
    with pytest.raises(ConfigError, match="may not set completion_lengths"):
        RewardFunction(Spec("length", kwargs={"completion_lengths": [1]}))
    with pytest.raises(ConfigError, match="set model in its kwargs"):
        RewardFunction(Spec("judge", channel="exploration"))
    with pytest.raises(ConfigError, match=r"add \*\*columns"):
        make(lambda prompts, completions, references: [1.0])
    reward_registry._registered.clear()
    with pytest.raises(ConfigError, match="must take"):
        make(lambda completions, **columns: [1.0])
    with pytest.raises(ConfigError, match="two reward functions are named 'length'"):
        build_reward_functions(
            [Spec("length", channel="exploration"), Spec("rlsp_rewards.length:length")]
        )


# --- the safe caller ---------------------------------------------------------------------------


def test_floats_none_and_verdicts():
    result = run(make(returning([1.0, None, Verdict(0.5, "x", "why")])))
    assert result.scores[0] == 1.0 and math.isnan(result.scores[1]) and result.scores[2] == 0.5
    assert result.applicable.tolist() == [True, False, True]
    assert result.parsed == [None, None, "x"] and result.reasons == [None, None, "why"]
    assert result.n_errors == 0
    plain = run(make(returning([1, True, np.float32(0.25)])))  # any real number
    assert plain.scores.tolist() == [1.0, 1.0, 0.25] and plain.parsed is None
    reward_registry._registered.clear()
    assert run(make(returning(np.array([0.0, 1.0, 2.0])))).scores.tolist() == [0.0, 1.0, 2.0]
    reward_registry._registered.clear()
    assert run(make(returning(torch.tensor([0.0, 1.0, 2.0])))).scores.tolist() == [0.0, 1.0, 2.0]


def test_columns_and_kwargs_reach_the_function():
    seen = {}

    def spy(prompts, completions, references, *, scale=1.0, **columns):
        seen.update(columns, scale=scale)
        return [scale] * len(completions)

    result = run(
        make(spy, kwargs={"scale": 3.0}),
        columns={"completion_lengths": [5, 6, 7], "topic": ["a", "b", "c"]},
    )
    assert result.scores.tolist() == [3.0, 3.0, 3.0]
    assert seen == {"completion_lengths": [5, 6, 7], "topic": ["a", "b", "c"], "scale": 3.0}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, "0.5", 1.0], r": sample 1 of 3 got '0.5'; expected a finite number"),
        ([1.0, 1.0, math.nan], r": sample 2 of 3 got nan"),
        ([math.inf, 1.0, 1.0], r": sample 0 of 3 got inf"),
        ([1.0, Verdict(math.nan, "x"), 1.0], r": sample 1 of 3 got nan"),
        ([1.0, [1.0], 1.0], r": sample 1 of 3 got \[1.0\]"),
        ([1.0, 1.0], r" returned 2 values for 3 samples"),
        (0.5, r" returned a float for 3 samples"),
    ],
)
def test_bad_values_raise_naming_function_and_sample(values, message):
    with pytest.raises(RewardError, match=rf"reward function 'under_test' \(under_test\){message}"):
        run(make(returning(values)))


@pytest.mark.parametrize(
    ("values", "scores", "n_errors"),
    [
        ([1.0, "bad", None], [1.0, -1.0, math.nan], 1),
        ([math.nan, math.inf, 0.5], [-1.0, -1.0, 0.5], 2),
        ([1.0], [-1.0, -1.0, -1.0], 3),  # wrong length: the whole batch
    ],
)
def test_bad_values_fall_back_when_asked(values, scores, n_errors):
    result = run(make(returning(values), on_error="fallback", fallback_value=-1.0))
    np.testing.assert_array_equal(result.scores.numpy(), np.array(scores, dtype=np.float32))
    assert result.n_errors == n_errors


def test_exceptions_raise_or_fall_back():
    def broken(prompts, completions, references, **columns):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(
        RewardError,
        match=r"'under_test' \(under_test\) raised ZeroDivisionError: division by zero on sample 0 of 3",
    ) as e:
        run(make(broken))
    assert isinstance(e.value.__cause__, ZeroDivisionError)

    reward_registry._registered.clear()
    result = run(make(broken, on_error="fallback", fallback_value=0.5))
    assert result.scores.tolist() == [0.5, 0.5, 0.5] and result.n_errors == 3

    def fails_on_empty(prompts, completions, references, **columns):
        return [1.0 / len(c) for c in completions]  # one sample in the batch is the empty string

    reward_registry._registered.clear()
    with pytest.raises(RewardError,
                       match=r"raised ZeroDivisionError: float division by zero on sample 1 of 3 \(completion ''\)"):
        run(make(fails_on_empty), completions=["ab", "", "abcd"])
    reward_registry._registered.clear()
    result = run(make(fails_on_empty, on_error="fallback", fallback_value=-1.0), completions=["ab", "", "abcd"])
    assert result.scores.tolist() == [0.5, -1.0, 0.25] and result.n_errors == 1  # only the failing sample

    def misconfigured(prompts, completions, references, **columns):
        raise ConfigError("answer_pattern is required")

    reward_registry._registered.clear()
    with pytest.raises(ConfigError):  # never hidden behind a fallback
        run(make(misconfigured, on_error="fallback"))


# --- scoring a batch and combining channels ----------------------------------------------------


def test_score_all_and_channel_totals():
    completions = [r"Wait, so \boxed{4}", r"\boxed{5}", "I give up"]
    functions = build_reward_functions(
        [
            Spec("numeric", channel="verifier", weight=1.0),
            Spec(
                "multiple_choice", channel="verifier", weight=0.5, name="mc"
            ),  # never applicable here
            Spec("backtracking", channel="exploration", weight=2.0, kwargs={"cap": 2}),
            Spec("length", channel="exploration", weight=0.1),
        ]
    )
    results = score_all(
        functions, ["q"] * 3, completions, ["4", "4", "4"], {"completion_lengths": [100, 200, 1000]}
    )
    assert list(results) == ["numeric", "mc", "backtracking", "length"]
    assert results["numeric"].scores.tolist() == [1.0, 0.0, 0.0]
    assert results["numeric"].parsed == ["4", "5", None]
    assert results["mc"].applicable.tolist() == [False, False, False]
    totals = channel_totals(functions, results)
    assert totals["verifier"].tolist() == [1.0, 0.0, 0.0]  # not applicable counts as 0
    expected = [2.0 * 0.5 + 0.1 * -10.0, 0.1 * -5.0, 0.1 * -1.0]
    np.testing.assert_allclose(totals["exploration"].numpy(), expected, rtol=1e-6)
