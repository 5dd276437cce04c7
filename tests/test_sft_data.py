"""SFT data: field mapping, filters, token lengths, dropping over-long rows, clear errors up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import build_tokenizer

from rlsp.config import load_recipe
from rlsp.errors import DataError
from rlsp.sft.dataset import conversation, count_tokens, prepare_sft_data, read_sft_examples

PROMPT_TEMPLATE = "{prompt} Put the final answer in \\\\boxed{}."


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe_for(tmp_path: Path, *overrides: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(f'data:\n  prompt_template: "{PROMPT_TEMPLATE}"\n')
    return load_recipe(path, overrides)


ROWS = [
    {
        "uid": "q1",
        "problem": "What is 1 + 1?",
        "trace": "1 + 1 = 2. \\boxed{2}",
        "level": 1,
        "kind": "qwq",
    },
    {
        "uid": "q2",
        "problem": "What is 2 + 2?",
        "trace": "Let me think. " * 30 + "\\boxed{4}",
        "level": 3,
        "kind": "human",
    },
    {
        "uid": "q3",
        "problem": "What is 3 + 3?",
        "trace": "3 + 3 = 6. Wait, check. \\boxed{6}",
        "level": 2,
        "kind": "qwq",
    },
]
MAPPING = ("sft.prompt_field=problem", "sft.response_field=trace", "sft.id_field=uid")


def test_field_mapping_ids_and_prompt_template(tmp_path):
    data_file = write_rows(tmp_path / "traces.jsonl", ROWS)
    recipe = recipe_for(tmp_path, f"sft.source={data_file}", *MAPPING, "sft.difficulty_field=level")
    examples, where, _ = read_sft_examples(recipe)
    assert where == str(data_file)
    assert [(e.id, e.prompt, e.difficulty) for e in examples] == [
        ("q1", "What is 1 + 1?", 1.0),
        ("q2", "What is 2 + 2?", 3.0),
        ("q3", "What is 3 + 3?", 2.0),
    ]
    row = conversation(examples[0], recipe)
    assert row["prompt"] == [
        {"role": "user", "content": "What is 1 + 1? Put the final answer in \\boxed{}."}
    ]
    assert row["completion"] == [{"role": "assistant", "content": "1 + 1 = 2. \\boxed{2}"}]


def test_relative_source_resolves_against_the_recipe_folder_and_row_numbers_are_ids(tmp_path):
    write_rows(tmp_path / "traces.jsonl", ROWS)
    recipe = recipe_for(
        tmp_path, "sft.source=traces.jsonl", "sft.prompt_field=problem", "sft.response_field=trace"
    )
    examples, _, _ = read_sft_examples(recipe, base_dir=tmp_path)
    assert [e.id for e in examples] == ["1", "2", "3"]


def test_where_filter_and_response_template(tmp_path):
    data_file = write_rows(tmp_path / "traces.jsonl", ROWS)
    recipe = recipe_for(
        tmp_path,
        f"sft.source={data_file}",
        *MAPPING,
        "sft.where={kind: qwq}",
        "sft.response_template=<think>{trace}</think> [{level}]",
    )
    examples, _, _ = read_sft_examples(recipe)
    assert [e.id for e in examples] == ["q1", "q3"]
    assert examples[0].response == "<think>1 + 1 = 2. \\boxed{2}</think> [1]"
    with pytest.raises(DataError, match="no row matches sft.where.*human"):
        read_sft_examples(
            recipe_for(tmp_path, f"sft.source={data_file}", *MAPPING, "sft.where={kind: other}")
        )


def test_lengths_are_measured_as_trained_and_over_long_rows_dropped_and_counted(tmp_path):
    tokenizer = build_tokenizer()
    data_file = write_rows(tmp_path / "traces.jsonl", ROWS)
    recipe = recipe_for(tmp_path, f"sft.source={data_file}", *MAPPING, "sft.max_length=100")
    examples, _, _ = read_sft_examples(recipe)
    lengths = {e.id: count_tokens(tokenizer, e, recipe) for e in examples}
    assert lengths["q2"] > 100 >= max(lengths["q1"], lengths["q3"])
    data = prepare_sft_data(recipe, tokenizer)
    assert (data.rows, data.too_long) == (3, 1)
    assert sorted(e.id for e in data.examples) == ["q1", "q3"]
    assert data.selected_tokens["max"] == max(lengths["q1"], lengths["q3"])
    assert data.pool_tokens["max"] == lengths["q2"]
    summary = data.summary(recipe)
    assert summary["dropped_over_max_length"] == 1 and sorted(summary["selected_ids"]) == [
        "q1",
        "q3",
    ]


def test_missing_mapped_field_is_a_clear_error(tmp_path):
    data_file = write_rows(
        tmp_path / "traces.jsonl", [ROWS[0], {"uid": "q9", "problem": "What is 9 + 9?"}]
    )
    with pytest.raises(
        DataError, match=r"row 2 has no value for field 'trace' \(sft.response_field\)"
    ):
        read_sft_examples(recipe_for(tmp_path, f"sft.source={data_file}", *MAPPING))
    with pytest.raises(
        DataError, match=r"no value for field 'question' \(sft.prompt_field\).*problem"
    ):
        read_sft_examples(
            recipe_for(tmp_path, f"sft.source={data_file}", "sft.response_field=trace")
        )


def test_n_larger_than_the_usable_rows_is_a_clear_error(tmp_path):
    data_file = write_rows(tmp_path / "traces.jsonl", ROWS)
    recipe = recipe_for(
        tmp_path, f"sft.source={data_file}", *MAPPING, "sft.n=3", "sft.max_length=100"
    )
    with pytest.raises(
        DataError,
        match="sft.n is 3 but .* only 2 usable examples .*1 longer than sft.max_length=100",
    ):
        prepare_sft_data(recipe, build_tokenizer())


def test_explicit_ids_over_the_context_length_are_an_error_not_dropped(tmp_path):
    data_file = write_rows(tmp_path / "traces.jsonl", ROWS)
    recipe = recipe_for(
        tmp_path,
        f"sft.source={data_file}",
        *MAPPING,
        "sft.select=ids",
        "sft.ids=[q3, q2]",
        "sft.max_length=100",
    )
    with pytest.raises(DataError, match="q2 .* longer than sft.max_length=100"):
        prepare_sft_data(recipe, build_tokenizer())
    ok = recipe_for(
        tmp_path, f"sft.source={data_file}", *MAPPING, "sft.select=ids", "sft.ids=[q3, q1]"
    )
    assert [e.id for e in prepare_sft_data(ok, build_tokenizer()).examples] == ["q3", "q1"]


def test_non_numeric_difficulty_and_unknown_builtin_are_errors(tmp_path):
    data_file = write_rows(tmp_path / "traces.jsonl", ROWS)
    with pytest.raises(DataError, match="not a number"):
        read_sft_examples(
            recipe_for(tmp_path, f"sft.source={data_file}", *MAPPING, "sft.difficulty_field=kind")
        )
    with pytest.raises(DataError, match="builtin:arith_traces"):
        read_sft_examples(recipe_for(tmp_path, "sft.source=builtin:arith_trace"))


def test_builtin_traces_use_the_task_levels_and_seed(tmp_path):
    recipe = recipe_for(tmp_path, "data.arith.levels=[4]", "sft.arith.size=10", "run.seed=5")
    examples, where, _ = read_sft_examples(recipe)
    assert where == "builtin:arith_traces" and len(examples) == 10
    assert all(" - " in e.prompt for e in examples)


def test_limo_traces_with_field_mapping(tmp_path, shared_data):
    limo = shared_data / "limo_solution_traces" / "deepseek-r1-distill-qwen-32b.jsonl"
    recipe = recipe_for(
        tmp_path,
        f"sft.source={limo}",
        "sft.prompt_field=question",
        "sft.response_field=solution",
        "sft.id_field=id",
        "sft.select=longest",
        "sft.n=3",
        "sft.max_length=8192",
    )
    examples, _, _ = read_sft_examples(recipe)
    assert (
        len(examples) == 291
        and examples[0].id == "3"
        and examples[0].response.rstrip().endswith("}")
    )
    data = prepare_sft_data(recipe, build_tokenizer())
    assert len(data.examples) == 3 and data.too_long > 0 and data.rows == 291
    assert data.selected_tokens["max"] <= 8192
    assert data.pool_tokens["max"] > 8192
    fitting = sorted((e.tokens for e in data.examples), reverse=True)
    assert fitting[0] == data.selected_tokens["max"]


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="sft.source: dataset file .missing.jsonl. not found"):
        read_sft_examples(recipe_for(tmp_path, "sft.source=missing.jsonl"), base_dir=tmp_path)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"line 2 is not a JSON object .*sft.on_bad_row=skip"):
        read_sft_examples(recipe_for(tmp_path, f"sft.source={broken}", *MAPPING))
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps(ROWS))
    examples, _, _ = read_sft_examples(recipe_for(tmp_path, f"sft.source={as_json}", *MAPPING))
    assert [e.id for e in examples] == ["q1", "q2", "q3"]


def test_on_bad_row_skip_drops_and_counts_bad_lines_and_rows(tmp_path):
    data_file = tmp_path / "mixed.jsonl"
    no_trace = {k: v for k, v in ROWS[1].items() if k != "trace"}
    lines = [json.dumps(ROWS[0]), "{not json", json.dumps(no_trace), json.dumps(ROWS[2])]
    data_file.write_text("\n".join(lines) + "\n")
    recipe = recipe_for(tmp_path, f"sft.source={data_file}", *MAPPING, "sft.on_bad_row=skip")
    examples, _, skipped = read_sft_examples(recipe)
    assert [e.id for e in examples] == ["q1", "q3"]
    assert skipped == 2  # one line that is not JSON, one row without the response field
    data = prepare_sft_data(recipe, build_tokenizer())
    assert data.summary(recipe)["skipped_bad_rows"] == 2


def test_hub_sources_pass_subset_and_split(monkeypatch, tmp_path):
    import datasets

    calls = []

    def fake_load_dataset(name, subset, split):
        calls.append((name, subset, split))
        return [{"uid": "h1", "problem": "1 + 1?", "trace": "2", "level": 1, "kind": "qwq"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    recipe = recipe_for(tmp_path, "sft.source=org/traces", "sft.subset=main", "sft.split=train", *MAPPING)
    examples, where, _ = read_sft_examples(recipe)
    assert calls == [("org/traces", "main", "train")] and where == "org/traces"
    assert [e.id for e in examples] == ["h1"]
