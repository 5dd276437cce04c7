"""``rlsp eval`` end to end on a tiny model: per-sample JSONL, summary, seeds, bad rows, errors, --compare."""

from __future__ import annotations

import json
from collections import Counter
from math import comb
from pathlib import Path

import pytest

from rlsp.cli import main

# Gives varied verdicts and votes on a random model's output, so pass@k and maj@k are not all 0.
VERIFIER = """
from rlsp_verifiers.verdict import Verdict

def parity(prompts, completions, references, **columns):
    return [Verdict(float(len(c) % 2 == 0), str(len(c) % 3)) for c in completions]
"""
ROWS = [
    {"question": "What is 2 + 3?", "answer": "5", "level": 1},
    {"question": "What is 12 + 7?", "answer": "19", "level": 1},
    {"question": "What is 40 + 2?", "answer": "42", "level": 2},
    {"question": "What is 9 + 9?", "answer": "18", "level": 2},
]
RECIPE = """
data:
  source: problems.jsonl
  prompt_field: question
  reference_field: answer
generation: {temperature: 1.0, max_new_tokens: 10, batch_size: 5}
verifier: {function: verifier.py:parity}
eval: {samples_per_prompt: 3, k: [1, 2, 3], group_by: [level]}
"""


@pytest.fixture
def recipe(tmp_path) -> Path:
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "verifier.py").write_text(VERIFIER)
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Make loading a model fail, to prove an error came before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the error was found")

    monkeypatch.setattr("rlsp.eval.run.load_causal_lm", refuse)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_samples_and_summary_agree(capsys, recipe, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    code, printed, _ = run(capsys, recipe, f"model.name_or_path={tiny_model_dir}", f"run.output_dir={out}")
    assert code == 0
    rows = read_jsonl(out / "eval_samples.jsonl")
    assert [(r["problem_index"], r["sample_index"]) for r in rows] == [(i, j) for i in range(4) for j in range(3)]
    assert all(r["prompt"] == ROWS[r["problem_index"]]["question"] for r in rows)
    assert all(r["columns"] == {"level": ROWS[r["problem_index"]]["level"]} for r in rows)

    # Recompute every number of the summary from the JSONL, independently of rlsp.eval.metrics.
    summary = json.loads((out / "eval_summary.json").read_text())
    by_problem = [[r for r in rows if r["problem_index"] == i] for i in range(4)]

    def expected(problems):
        samples = [r for p in problems for r in p]
        m = {"accuracy": sum(r["correct"] for r in samples) / len(samples)}
        for k in (1, 2, 3):
            solved = sum(1 - comb(3 - sum(r["correct"] for r in p), k) / comb(3, k) for p in problems)
            m[f"pass@{k}"] = solved / len(problems)
        for k in (2, 3):
            wins = 0
            for p in problems:
                votes = Counter(r["parsed"] for r in p[:k])
                top = max(votes.values())
                winner = next(r for r in p[:k] if votes[r["parsed"]] == top)  # first to reach the top count
                wins += winner["correct"]
            m[f"maj@{k}"] = wins / len(problems)
        m["boxed_rate"] = sum(r["boxed"] for r in samples) / len(samples)
        m["truncation_rate"] = sum(r["finish_reason"] == "length" for r in samples) / len(samples)
        m["mean_length"] = sum(r["length"] for r in samples) / len(samples)
        return m

    assert summary["metrics"] == pytest.approx(expected(by_problem))
    assert 0 < summary["metrics"]["accuracy"] < 1  # the check above is not vacuous
    for level, problems in (("1", by_problem[:2]), ("2", by_problem[2:])):
        assert summary["groups"]["level"][level] == pytest.approx({"problems": 2, **expected(problems)})
    assert (summary["problems"], summary["samples_per_prompt"], summary["skipped_rows"]) == (4, 3, 0)
    assert f"pass@3 {summary['metrics']['pass@3']:.3f}" in printed
    assert "accuracy by level: 1 " in printed


def test_same_seed_same_samples(capsys, recipe, tiny_model_dir, tmp_path):
    def samples(seed: int, name: str) -> str:
        out = tmp_path / name
        code, _, _ = run(capsys, recipe, f"model.name_or_path={tiny_model_dir}", f"run.output_dir={out}",
                         f"run.seed={seed}")
        assert code == 0
        return (out / "eval_samples.jsonl").read_text()

    first = samples(1, "a")
    assert samples(1, "b") == first
    assert samples(2, "c") != first  # sampling is on: another seed draws other answers
    # a second evaluation into the same folder is refused, and replaces the first with --overwrite
    code, _, err = run(capsys, recipe, f"model.name_or_path={tiny_model_dir}", f"run.output_dir={tmp_path / 'a'}",
                       "run.seed=2")
    assert code == 2 and "already holds the output of an earlier rlsp eval (eval_summary.json" in err
    assert (tmp_path / "a" / "eval_samples.jsonl").read_text() == first
    code, _, _ = run(capsys, "--overwrite", recipe, f"model.name_or_path={tiny_model_dir}",
                     f"run.output_dir={tmp_path / 'a'}", "run.seed=2")
    assert code == 0 and (tmp_path / "a" / "eval_samples.jsonl").read_text() != first


@pytest.mark.parametrize("on_bad_row", ["skip", "error"])
def test_bad_rows_are_counted_or_stop_the_run(capsys, recipe, tiny_model_dir, tmp_path, monkeypatch, on_bad_row):
    lines = [json.dumps(r) for r in ROWS] + ['{"question": "cut off', json.dumps({"question": "no answer"})]
    (tmp_path / "problems.jsonl").write_text("\n".join(lines) + "\n")
    argv = [recipe, f"model.name_or_path={tiny_model_dir}", f"run.output_dir={tmp_path / 'out'}",
            f"data.on_bad_row={on_bad_row}"]
    if on_bad_row == "error":
        monkeypatch.setattr("rlsp.eval.run.load_causal_lm", lambda *a, **k: pytest.fail("model loaded"))
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert "line 5 is not a JSON object" in err and "data.on_bad_row=skip" in err
        return
    code, printed, _ = run(capsys, *argv, "eval.samples_per_prompt=1", "eval.k=[1]", "generation.temperature=0")
    assert code == 0
    assert json.loads((tmp_path / "out" / "eval_summary.json").read_text())["skipped_rows"] == 2
    assert "skipped 2 malformed or incomplete rows" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--benchmark", "gsm8"], "unknown benchmark 'gsm8'. Did you mean 'gsm8k'?"),
        (["{recipe}", "eval.k=[1,4]"], "eval.k: k=4 is larger than eval.samples_per_prompt=3"),
        (["{recipe}", "generation.temperature=0"], "gives 3 identical greedy answers"),
        (["{recipe}", "eval.group_by=[subject]"], "eval.group_by: the data has no column 'subject'"),
        (["{recipe}", "verifier.function=math", "verifier.kwargs.answer_format=boxd"],
         "answer_format 'boxd' is unknown"),
        (["--benchmark", "math500", "eval.data_dir={tmp}"], "data.source=HuggingFaceH4/MATH-500 data.split=test"),
        (["--plot", "x.png"], "--plot goes with --compare"),
        (["model.name_or_path=x"], "give a recipe file"),
    ],
)
def test_errors_come_before_the_model_loads(capsys, recipe, tmp_path, no_model, argv, message):
    argv = [a.format(recipe=recipe, tmp=tmp_path) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_benchmark_shortcuts_without_a_recipe(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "arith"
    code, printed, _ = run(
        capsys, "--benchmark", "arith", "--model", tiny_model_dir, "--n", "2", "--k", "1,2",
        "--temperature", "0.7", "--max-new-tokens", "6", "--limit", "3", "--output-dir", out,
    )
    assert code == 0, printed
    summary = json.loads((out / "eval_summary.json").read_text())
    assert summary["benchmark"] == "arith" and summary["problems"] == 3 and summary["samples_per_prompt"] == 2
    assert set(summary["metrics"]) >= {"pass@1", "pass@2", "maj@2"}
    assert set(summary["groups"]["level"]) <= {"2", "3"}
    assert len(read_jsonl(out / "eval_samples.jsonl")) == 6


def summary_file(path: Path, accuracy: float, level_accuracy: dict[str, float]) -> Path:
    groups = {"level": {lv: {"problems": 2, "accuracy": a, "boxed_rate": 0.5} for lv, a in level_accuracy.items()}}
    metrics = {"accuracy": accuracy, "mean_length": 10.0}
    path.write_text(json.dumps({"problems": 4, "metrics": metrics, "groups": groups}))
    return path


def test_compare_prints_deltas_and_plots(capsys, tmp_path):
    a = summary_file(tmp_path / "before.json", 0.25, {"1": 0.5, "2": 0.0})
    b = summary_file(tmp_path / "after.json", 0.5, {"1": 0.5, "3": 1.0})
    plot = tmp_path / "cmp.png"
    code, printed, _ = run(capsys, "--compare", a, b, "--plot", plot)
    assert code == 0
    lines = printed.splitlines()
    assert lines[0].split() == ["metric", "A", "B", "delta"]  # both files sit in one folder
    assert any(line.split() == ["accuracy", "0.250", "0.500", "+0.250"] for line in lines)
    assert any(line.split() == ["mean_length", "10.000", "10.000", "+0.000"] for line in lines)
    assert "level=2  (2 / ? problems)" in printed and "level=3  (? / 2 problems)" in printed
    assert any(line.split() == ["accuracy", "0.000", "-", "-"] for line in lines)  # level 2 only in A
    assert not any("boxed_rate" in line and "level" in line for line in lines)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rejects_a_missing_run(capsys, tmp_path):
    code, _, err = run(capsys, "--compare", tmp_path, tmp_path / "nope")
    assert code == 2 and "neither an eval output directory" in err
