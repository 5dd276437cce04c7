"""Datasets: the built-in arithmetic task, local files, field mapping and answer extraction."""

from __future__ import annotations

import json

import pytest

from rlsp.config.schema import ArithConfig, DataConfig
from rlsp.data import load_examples
from rlsp.data.arithmetic import LEVELS, arithmetic_problems
from rlsp.data.prompts import chat_messages
from rlsp.data.references import reference_answer
from rlsp.errors import ConfigError, DataError


def test_arithmetic_answers_are_right():
    for p in arithmetic_problems("train", 60, [1, 2, 3, 4, 5, 6], seed=3):
        a, op, b = p.question.removeprefix("What is ").removesuffix("?").split()
        assert int(p.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert op == LEVELS[p.level].symbol


def test_arithmetic_splits_never_overlap_across_seeds():
    heldout = {p.question for seed in range(3) for p in arithmetic_problems("heldout", 300, [2, 3, 5], seed)}
    train = {p.question for seed in range(3) for p in arithmetic_problems("train", 1500, [2, 3, 5], seed)}
    assert heldout and train and not heldout & train


def test_arithmetic_is_seeded_and_mixes_levels_evenly():
    a = arithmetic_problems("heldout", 100, [2, 3], seed=0)
    assert a == arithmetic_problems("heldout", 100, [2, 3], seed=0)
    assert a != arithmetic_problems("heldout", 100, [2, 3], seed=1)
    assert len({p.question for p in a}) == 100
    assert sum(p.level == 2 for p in a) == 50


def test_arithmetic_pool_too_small_is_an_error():
    with pytest.raises(ConfigError, match="level 1 .* has only 23 heldout problems but 50 were asked for"):
        arithmetic_problems("heldout", 50, [1], seed=0)


def test_builtin_source_uses_split_sizes():
    cfg = DataConfig(source="builtin:arith", split="heldout", arith=ArithConfig(levels=[3], heldout_size=20))
    data = load_examples(cfg, seed=0)
    assert len(data.examples) == 20 and data.examples[0].columns == {"level": 3}


@pytest.mark.parametrize(
    "text, fmt, expected",
    [
        ("Janet sells 9 eggs.\n#### 1,018", "gsm8k", "1018"),
        ("no marker here", "gsm8k", None),
        ("so $\\boxed{\\frac{1}{2}}$.", "boxed", "\\frac{1}{2}"),
        ("  42 ", "plain", "42"),
    ],
)
def test_reference_answer(text, fmt, expected):
    assert reference_answer(text, fmt) == expected


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_field_mapping_and_columns(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "solution": "\\boxed{2}", "level": 1}])
    cfg = DataConfig(source="d.jsonl", prompt_field="problem", reference_field="solution", reference_format="boxed")
    data = load_examples(cfg, seed=0, base_dir=tmp_path)
    assert [(e.prompt, e.reference, e.columns) for e in data.examples] == [("1+1?", "2", {"level": 1})]


def test_json_and_parquet_files(tmp_path):
    import datasets

    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(4)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    for name in ("d.json", "d.parquet"):
        data = load_examples(DataConfig(source=name, limit=3), seed=0, base_dir=tmp_path)
        assert [e.reference for e in data.examples] == ["0", "1", "2"]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="dataset file 'nothere.jsonl' not found"):
        load_examples(DataConfig(source="nothere.jsonl"), seed=0, base_dir=tmp_path)


def test_rows_missing_the_mapped_field(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "1"}, {"question": "b"}])
    with pytest.raises(DataError, match=r"row 2 has no value for field 'answer'.*'question'"):
        load_examples(DataConfig(source="d.jsonl"), seed=0, base_dir=tmp_path)
    data = load_examples(DataConfig(source="d.jsonl", on_bad_row="skip"), seed=0, base_dir=tmp_path)
    assert len(data.examples) == 1 and data.skipped == 1


def test_malformed_lines_error_or_skip_with_count(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "1"}, "{not json", "[1, 2]"])
    with pytest.raises(DataError, match="line 2 is not a JSON object"):
        load_examples(DataConfig(source="d.jsonl"), seed=0, base_dir=tmp_path)
    data = load_examples(DataConfig(source="d.jsonl", on_bad_row="skip"), seed=0, base_dir=tmp_path)
    assert data.skipped == 2


def test_shuffle_and_limit_are_seeded(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(20)])
    cfg = DataConfig(source="d.jsonl", shuffle=True, limit=5)
    first = [e.prompt for e in load_examples(cfg, seed=1, base_dir=tmp_path).examples]
    assert first == [e.prompt for e in load_examples(cfg, seed=1, base_dir=tmp_path).examples]
    assert first != [f"q{i}" for i in range(5)]


def test_gsm8k_file(shared_data):
    cfg = DataConfig(source=str(shared_data / "gsm8k/test.jsonl"), reference_format="gsm8k")
    data = load_examples(cfg, seed=0)
    assert len(data.examples) == 1319 and data.examples[0].reference == "18"


def test_math500_file(shared_data):
    cfg = DataConfig(source=str(shared_data / "math500/test.jsonl"), prompt_field="problem")
    data = load_examples(cfg, seed=0)
    assert len(data.examples) == 500 and data.examples[0].columns["subject"] == "Precalculus"


def test_chat_messages_template_and_system_override():
    cfg = DataConfig(system_prompt="Be careful.", prompt_template="Solve: {prompt}\nAnswer in \\boxed{}.")
    example = load_examples(DataConfig(split="heldout", limit=1), seed=0).examples[0]
    messages = chat_messages(example, cfg)
    assert messages[0] == {"role": "system", "content": "Be careful."}
    assert messages[1]["content"] == f"Solve: {example.prompt}\nAnswer in \\boxed{{}}."
    assert chat_messages(example, cfg, system_prompt="Inoculate.")[0]["content"] == "Inoculate."
