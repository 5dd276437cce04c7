"""rlsp inspect: the rollout loader (rlsp, TRL, verl, any JSONL), the behaviour detector, the
per-step table, and the CLI's files on a real training run and a real TRL GRPOTrainer run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from test_training import make_recipe

from rlsp.analysis.behaviours import MarkerDetector, sentence_spans
from rlsp.analysis.html_report import highlight
from rlsp.analysis.markers import read_markers
from rlsp.analysis.rollout_loader import load_rollouts
from rlsp.analysis.rollout_schema import Sample
from rlsp.analysis.step_table import step_table
from rlsp.errors import ConfigError, DataError


def inspect_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlsp", "inspect", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "150"})


def write_jsonl(path, rows, tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def rollout(step, completion, verifier=1.0, **extra) -> dict:
    return {"schema_version": 1, "step": step, "prompt": "p", "completion": completion, "reference": "1",
            "rewards": {"verifier": verifier, "exploration": 0.5}, "reward_functions": {}, "parsed": {},
            "trained_reward": 0.0, "correct": verifier >= 1.0, "length": 100, "finish_reason": "stop", "group": 0,
            "system_prompt": None, "hooks": [], **extra}


# -- the detector ------------------------------------------------------------------------------

def test_detector_labels_sentences_with_offsets_counts_and_rates():
    text = "So x = 1.5 here. Wait, that's wrong! Let me verify: 2 + 2 = 4.\nIt awaited nothing. Hmm, maybe not."
    profile = MarkerDetector().detect(text, tokens=250)
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    assert sentences == ["So x = 1.5 here.", "Wait, that's wrong!", "Let me verify: 2 + 2 = 4.", "It awaited nothing.",
                         "Hmm, maybe not."]
    labelled = {(text[s.start:s.end], s.behaviour, s.marker) for s in profile.spans}
    assert labelled == {("Wait, that's wrong!", "backtracking", "Wait"),  # the first marker in the sentence
                        ("Let me verify: 2 + 2 = 4.", "verification", "Let me verify"),
                        ("Hmm, maybe not.", "backtracking", "Hmm"), ("Hmm, maybe not.", "uncertainty", "maybe")}
    assert profile.counts == {"backtracking": 2, "verification": 1, "exploration": 0, "uncertainty": 1}
    assert profile.rate_per_1k("backtracking") == pytest.approx(8.0)  # 2 sentences in 250 tokens
    assert not profile.tokens_estimated
    # curly apostrophes (R1 writes them) match; without a token count, words and marks are counted
    curly = MarkerDetector().detect("So that\u2019s not right.")
    assert curly.spans[0].marker == "that\u2019s not right" and curly.tokens == 7 and curly.tokens_estimated


def test_markers_are_replaced_from_a_file_and_bad_files_are_named(tmp_path):
    path = tmp_path / "markers.yaml"
    path.write_text("recheck: [let me see]\n")
    detector = MarkerDetector(read_markers(path))
    assert detector.behaviours == ("recheck",)
    assert detector.detect("Let me see. Wait.").counts == {"recheck": 1}
    path.write_text("backtracking: wait\n")
    with pytest.raises(ConfigError, match=r"markers.yaml.backtracking: give a non-empty list of phrases"):
        read_markers(path)
    with pytest.raises(ConfigError, match="not found"):
        read_markers(tmp_path / "nope.yaml")


def test_r1_traces_backtrack_and_ordinary_solutions_do_not(shared_data):
    folder = shared_data / "limo_solution_traces"
    detector = MarkerDetector()

    def share(name: str) -> float:
        rows = [json.loads(line) for line in (folder / name).read_text().splitlines()[:12]]
        return sum(detector.detect(r["solution"]).has("backtracking") for r in rows) / len(rows)

    assert share("deepseek-r1-distill-qwen-32b.jsonl") >= 0.9
    assert share("qwen2.5-32b-instruct.jsonl") <= 0.1
    assert share("official-solution.jsonl") <= 0.1


def test_step_table_splits_accuracy_by_behaviour():
    samples = [Sample("Wait, no.", step=1, correct=True, length=10), Sample("Fine.", step=1, correct=False, length=10),
               Sample("Wait.", step=1, correct=False, length=20), Sample("Done.", step=2, correct=True, length=5)]
    detector = MarkerDetector()
    rows = step_table(samples, detector.detect_all([s.completion for s in samples], [s.length for s in samples]),
                      detector.behaviours)
    assert [r.step for r in rows] == [1, 2]
    first = rows[0]
    assert first.share["backtracking"] == pytest.approx(2 / 3)
    assert first.per_1k["backtracking"] == pytest.approx((1000 / 10 + 1000 / 20) / 3)  # "Wait, no." is one sentence
    assert first.accuracy == pytest.approx(1 / 3)
    assert first.accuracy_with["backtracking"] == pytest.approx(0.5) and first.accuracy_without["backtracking"] == 0.0
    assert rows[1].accuracy_with["backtracking"] is None and first.length_mean == pytest.approx(40 / 3)


def test_highlight_escapes_html_and_marks_each_sentence_once():
    text = "a <b> c. Wait, maybe <i>."
    html = highlight(text, MarkerDetector().detect(text).spans)
    assert html == ("a &lt;b&gt; c. <mark class='b-backtracking' title='backtracking: Wait; uncertainty: maybe' "
                    "data-b='backtracking uncertainty'>Wait, maybe &lt;i&gt;.</mark>")


# -- the loader ----------------------------------------------------------------------------------

def test_loader_reads_a_run_being_written_and_names_what_it_cannot_read(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "rollouts.jsonl", [rollout(1, "a"), rollout(2, "b", 0.0)], tail='{"schema_version": 1, "st')
    loaded = load_rollouts(run)
    assert loaded.format == "rlsp-rollouts" and loaded.steps == [1, 2]
    assert [s.correct for s in loaded.samples] == [True, False]
    assert "last line (3) is incomplete" in loaded.notes[0] and "read the 2 complete lines" in loaded.notes[0]

    write_jsonl(run / "rollouts.jsonl", [rollout(1, "a")], tail='{"broken\n' + json.dumps(rollout(2, "b")) + "\n")
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_rollouts(run)
    write_jsonl(run / "rollouts.jsonl", [rollout(1, "a"), {**rollout(2, "b"), "schema_version": 7}])
    with pytest.raises(DataError, match=r"line 2: rollout schema_version 7 .* \(0..1\).*upgrade rlsp"):
        load_rollouts(run)
    legacy = {k: v for k, v in rollout(3, "c", 0.5).items() if k not in ("schema_version", "correct", "hooks")}
    write_jsonl(run / "rollouts.jsonl", [legacy])
    assert load_rollouts(run).samples[0].correct is False  # version 0: verifier >= 1.0 decides

    (run / "rollouts.jsonl").write_text("")
    with pytest.raises(DataError, match="no completions yet"):
        load_rollouts(run)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="the directory is empty; expected rollouts.jsonl"):
        load_rollouts(empty)
    (empty / "summary.json").write_text("{}")
    with pytest.raises(DataError, match="this run has no completions"):
        load_rollouts(empty)


def test_loader_reads_verl_dumps_eval_samples_and_any_jsonl_with_a_named_field(tmp_path):
    verl = tmp_path / "verl"
    verl.mkdir()
    for step in (2, 10):
        write_jsonl(verl / f"{step}.jsonl", [{"input": "q", "output": f"Wait {step}.", "gts": "4", "score": 1.0,
                                              "step": step, "acc": True}])
    loaded = load_rollouts(verl)
    assert loaded.format == "verl-jsonl" and loaded.steps == [2, 10] and loaded.samples[1].completion == "Wait 10."
    assert loaded.samples[0].rewards == {"score": 1.0} and loaded.samples[0].correct is True

    write_jsonl(tmp_path / "eval_samples.jsonl", [{"problem_index": 0, "sample_index": 0, "prompt": "q",
                                                   "completion": "x", "score": 0.0, "correct": False, "length": 3}])
    assert load_rollouts(tmp_path / "eval_samples.jsonl").samples[0].correct is False

    traces = tmp_path / "traces.jsonl"
    write_jsonl(traces, [{"question": "q", "solution": "Wait."}])
    with pytest.raises(DataError, match="fields: question, solution.*--text-field"):
        load_rollouts(traces)
    sample = load_rollouts(traces, text_field="solution", prompt_field="question").samples[0]
    assert (sample.prompt, sample.completion, sample.step) == ("q", "Wait.", None)
    with pytest.raises(DataError, match="no field 'answer' .*question, solution"):
        load_rollouts(traces, text_field="answer")


# -- end to end ----------------------------------------------------------------------------------

def test_inspect_a_real_training_run_writes_table_plots_and_report(tmp_path, tiny_model_dir):
    from rlsp.training.ppo_trainer import Trainer

    path, recipe = make_recipe(tmp_path, tiny_model_dir, "train.steps=2")
    Trainer(recipe, path).fit()
    run = tmp_path / "run"
    result = inspect_cli(run, "--top", "1")
    assert result.returncode == 0, result.stderr
    out = run / "inspect"
    with (out / "steps.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["step"] for r in table] == ["1", "2"] and all(r["samples"] == "4" for r in table)
    columns = {"backtracking_share", "accuracy_with_backtracking", "reward_verifier", "reward_exploration"}
    assert columns <= table[0].keys()
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8 and all(s["tokens_estimated"] is False for s in samples)
    for png in ("behaviours.png", "length_accuracy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert report.count("<div class='card'") == 8 and report.count("data:image/png;base64,") == 2
    assert "http://" not in report and "https://" not in report  # nothing fetched from a network
    assert "wrote steps.csv" in result.stdout and "Traceback" not in result.stderr

    labelled = inspect_cli(run, "--labeller", tiny_model_dir, "--out", tmp_path / "llm", "--top", "0")
    assert labelled.returncode == 0, labelled.stderr
    with (tmp_path / "llm" / "steps.csv").open() as f:
        columns = {"deduction_share", "backtracking_share", "uncertainty-estimation_share"}
        assert columns <= next(csv.DictReader(f)).keys()
    assert json.loads((tmp_path / "llm" / "samples.jsonl").read_text().splitlines()[0])["labeller"].startswith("llm:")


def test_inspect_a_trl_grpo_run_and_compare_it_with_itself(tmp_path, tiny_model_dir):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def correct(completions, **kwargs):
        return [float("7" in c[0]["content"]) for c in completions]

    prompts = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i} + 7?"}]} for i in range(4)])
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=12, max_steps=2, logging_steps=1, log_completions=True, report_to=[],
                      use_cpu=True, save_strategy="no", bf16=False)
    GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[correct], args=args, train_dataset=prompts).train()
    loaded = load_rollouts(tmp_path / "trl", correct_field="correct")
    assert loaded.format == "trl-parquet" and loaded.steps == [1, 2] and len(loaded.samples) == 8
    assert all(set(s.rewards) == {"correct"} and s.correct == (s.rewards["correct"] >= 1) for s in loaded.samples)
    assert loaded.samples[0].prompt.startswith("What is")

    result = inspect_cli(tmp_path / "trl", "--compare", tmp_path / "trl", "--correct-field", "correct", "--top", "0")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "trl" / "inspect-vs-trl"
    with (out / "steps.csv").open() as f:
        assert [(r["run"], r["step"]) for r in csv.DictReader(f)] == [("A: trl", "1"), ("A: trl", "2"),
                                                                       ("B: trl", "1"), ("B: trl", "2")]
    assert (out / "report.html").read_text().count("<div class='card'") == 16


def test_inspect_cli_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = inspect_cli(tmp_path / "empty")
    assert result.returncode == 2 and "the directory is empty" in result.stderr and "Traceback" not in result.stderr
    result = inspect_cli(tmp_path / "empty", "--top", "-1")
    assert result.returncode == 2 and "--top: must be at least 0" in result.stderr


def test_llm_labeller_gives_one_taxonomy_label_per_sentence_and_falls_back_to_markers(tiny_model_dir):
    from rlsp.analysis.llm_labeller import TAXONOMY, LLMLabeller
    from rlsp.modeling.causal_lm import load_causal_lm

    model, tokenizer = load_causal_lm(str(tiny_model_dir), device="cpu")
    texts = ["First add 2 and 3. Wait, that's wrong. Maybe 6.", "So 12 + 7 = 19. Let me verify: 19 - 7 = 12."]
    sure = LLMLabeller("tiny", model=model, tokenizer=tokenizer, batch_size=2, min_confidence=0.0).label(texts)
    for text, profile in zip(texts, sure, strict=True):
        assert [(s.start, s.end) for s in profile.spans] == sentence_spans(text)  # each sentence once
        assert all(s.behaviour in TAXONOMY and s.marker.startswith("llm p=") for s in profile.spans)
        assert sum(profile.counts.values()) == len(profile.spans) and profile.labeller == "llm:tiny"
    # batching and left padding change nothing: each sentence alone gives the same choice
    one_by_one = LLMLabeller("tiny", model=model, tokenizer=tokenizer, batch_size=1, min_confidence=0.0).label(texts)
    assert [[s.behaviour for s in p.spans] for p in one_by_one] == [[s.behaviour for s in p.spans] for p in sure]
    # never sure enough: sentences with a marker take the marker's label, the others keep the model's
    unsure = LLMLabeller("tiny", model=model, tokenizer=tokenizer, min_confidence=1.01).label(texts)
    labels = [(s.behaviour, s.marker) for s in unsure[0].spans]
    assert labels[1:] == [("backtracking", "markers"), ("uncertainty-estimation", "markers")]
    assert labels[0] == (sure[0].spans[0].behaviour, sure[0].spans[0].marker)
    assert [s.behaviour for s in unsure[1].spans][1] == "example-testing"


def test_recipe_markers_are_checked_before_training(tmp_path, tiny_model_dir):
    from rlsp.training.preflight import check_training_recipe

    _, recipe = make_recipe(tmp_path, tiny_model_dir, "train.behaviour_markers={backtracking: wait}")
    with pytest.raises(ConfigError, match=r"train.behaviour_markers.backtracking: give a non-empty list of phrases"):
        check_training_recipe(recipe)
    _, recipe = make_recipe(tmp_path, tiny_model_dir, "train.behaviour_markers={doubt: [hmm]}")
    check_training_recipe(recipe)
