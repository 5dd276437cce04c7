"""One loader for logged completions: rlsp's own logs and those of the frameworks people come from.

``load_rollouts(path)`` takes a run directory or a file and returns ``Sample``s:

- ``rollouts.jsonl`` (``rlsp train``; schema versions 0..``SCHEMA_VERSION``),
- ``eval_samples.jsonl`` (``rlsp eval``),
- TRL's ``completions/completions_NNNNN.parquet`` (``GRPOTrainer(log_completions=True)``),
- verl's ``<rollout_data_dir>/<step>.jsonl`` (``trainer.rollout_data_dir``),
- any JSONL given the name of its text field (``text_field``).

A run still being written may end in half a line: what is complete is read and a note says so.
Everything else that cannot be read stops with a ``DataError`` naming the file, line and fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rlsp.analysis.rollout_schema import SCHEMA_VERSION, LoadedRun, Sample
from rlsp.data.rows import read_parquet, read_text
from rlsp.errors import DataError

KNOWN_LAYOUTS = ("rollouts.jsonl (rlsp train), eval_samples.jsonl (rlsp eval), completions/*.parquet (TRL "
                 "GRPOTrainer with log_completions=True) or <step>.jsonl files (verl trainer.rollout_data_dir)")


def load_rollouts(path: str | Path, text_field: str | None = None, prompt_field: str | None = None,
                  correct_field: str | None = None) -> LoadedRun:
    """Every sample under ``path`` (a run directory or one file), oldest step first."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory.")
    files, fmt = _files_of(path, text_field) if path.is_dir() else ([path], _format_of_file(path, text_field))
    run = LoadedRun([], str(path), fmt)
    for file in files:
        if fmt == "trl-parquet":
            run.samples += _read_trl_parquet(file, correct_field)
            continue
        rows, notes = read_jsonl(file)
        run.notes += notes
        run.samples += [
            _checked(_sample(fmt, row, file, n, text_field, prompt_field, correct_field), f"{file}: line {n}")
            for n, row in rows
        ]
    if not run.samples:
        raise DataError(f"{path}: the run has no completions yet ({', '.join(str(f) for f in files)} "
                        f"{'is' if len(files) == 1 else 'are'} empty); "
                        f"rlsp train writes rollouts.jsonl after each step.")
    run.samples.sort(key=lambda s: -1 if s.step is None else s.step)
    return run


def read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, object) per line; a broken *last* line is skipped with a note, any other stops."""
    lines = read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    rows, notes = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                notes.append(f"{path}: the last line ({number}) is incomplete, as in a run still being written; "
                             f"read the {len(rows)} complete lines before it.")
                break
            raise DataError(f"{path}: line {number} is not valid JSON ({e.msg}); fix or remove that line.") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number} is a JSON {type(row).__name__}, not an object.")
        rows.append((number, row))
    return rows, notes


# -- which format ------------------------------------------------------------------------------

def _files_of(run_dir: Path, text_field: str | None) -> tuple[list[Path], str]:
    if (run_dir / "rollouts.jsonl").is_file():
        return [run_dir / "rollouts.jsonl"], "rlsp-rollouts"
    if (run_dir / "eval_samples.jsonl").is_file():
        return [run_dir / "eval_samples.jsonl"], "rlsp-eval"
    parquet = sorted((run_dir / "completions").glob("*.parquet")) or sorted(run_dir.glob("*.parquet"))
    if parquet:
        return parquet, "trl-parquet"
    steps = sorted((p for p in run_dir.glob("*.jsonl") if re.fullmatch(r"\d+", p.stem)), key=lambda p: int(p.stem))
    if steps:
        return steps, "verl-jsonl"
    jsonl = sorted(run_dir.glob("*.jsonl"))
    if len(jsonl) == 1:
        return jsonl, _format_of_file(jsonl[0], text_field)
    if not any(run_dir.iterdir()):
        raise DataError(f"{run_dir}: the directory is empty; expected {KNOWN_LAYOUTS}.")
    if (run_dir / "summary.json").is_file() or (run_dir / "checkpoints").is_dir():
        raise DataError(f"{run_dir}: this run has no completions (no rollouts.jsonl); it was written by a version "
                        f"of rlsp train that did not log rollouts, or no step finished.")
    found = ", ".join(sorted(p.name for p in run_dir.iterdir())[:8])
    raise DataError(f"{run_dir}: found no logged completions (it holds {found}); expected {KNOWN_LAYOUTS}, "
                    f"or give one JSONL file with --text-field.")


def _format_of_file(path: Path, text_field: str | None) -> str:
    if path.suffix == ".parquet":
        return "trl-parquet"
    if path.suffix not in (".jsonl", ".json"):
        raise DataError(f"{path}: cannot read {path.suffix or 'a file without extension'}; "
                        f"give a .jsonl or .parquet file, or a run directory.")
    rows, _ = read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: the file is empty; the run has no completions yet.")
    first = rows[0][1]
    if text_field:
        return "jsonl"
    if "schema_version" in first or {"trained_reward", "completion"} <= first.keys():
        return "rlsp-rollouts"
    if {"problem_index", "completion"} <= first.keys():
        return "rlsp-eval"
    if {"input", "output"} <= first.keys():
        return "verl-jsonl"
    raise DataError(f"{path}: not an rlsp, TRL or verl log (fields: {', '.join(sorted(first))}); name the field "
                    f"holding the text with --text-field (and the prompt's with --prompt-field).")


# -- one row -> Sample -------------------------------------------------------------------------

def _sample(fmt: str, row: dict, path: Path, number: int, text_field, prompt_field, correct_field) -> Sample:
    where = f"{path}: line {number}"
    if fmt == "rlsp-rollouts":
        return _rlsp_rollout(row, where)
    if fmt == "rlsp-eval":
        return Sample(completion=_text(row, "completion", where), prompt=row.get("prompt", ""),
                      reference=_str_or_none(row.get("reference")), correct=row.get("correct"),
                      rewards={"verifier": row["score"]} if "score" in row else {}, length=row.get("length"),
                      finish_reason=row.get("finish_reason"), group=row.get("problem_index"))
    if fmt == "verl-jsonl":
        acc = row.get(correct_field or "acc")
        return Sample(completion=_text(row, "output", where), prompt=str(row.get("input", "")),
                      step=row.get("step"), reference=_str_or_none(row.get("gts")),
                      rewards={"score": row["score"]} if isinstance(row.get("score"), (int, float)) else {},
                      correct=None if acc is None else bool(acc))
    if text_field not in row:
        raise DataError(f"{where}: no field {text_field!r} (--text-field); its fields are {', '.join(sorted(row))}.")
    correct = row.get(correct_field) if correct_field else None
    return Sample(completion=_text(row, text_field, where), prompt=str(row.get(prompt_field or "prompt", "")),
                  step=row.get("step") if isinstance(row.get("step"), int) else None,
                  correct=None if correct is None else bool(correct), length=row.get("length"))


def _rlsp_rollout(row: dict, where: str) -> Sample:
    version = row.get("schema_version", 0)
    if not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
        raise DataError(f"{where}: rollout schema_version {version!r} is not one this rlsp reads "
                        f"(0..{SCHEMA_VERSION}); it was written by a newer rlsp: upgrade rlsp to inspect it.")
    rewards = row.get("rewards") or {}
    correct = row.get("correct")
    if correct is None and version == 0 and isinstance(rewards, dict) and _is_number(rewards.get("verifier")):
        correct = rewards["verifier"] >= 1.0  # version 0 did not log it; 1.0 is the default pass threshold
    return Sample(completion=_text(row, "completion", where), prompt=row.get("prompt", ""), step=row.get("step"),
                  reference=_str_or_none(row.get("reference")), rewards=rewards,
                  reward_functions=row.get("reward_functions") or {}, trained_reward=row.get("trained_reward"),
                  correct=correct, length=row.get("length"), finish_reason=row.get("finish_reason"),
                  group=row.get("group"), system_prompt=row.get("system_prompt"), hooks=row.get("hooks") or [])


def _checked(sample: Sample, where: str) -> Sample:
    """Refuse a field of the wrong type here, naming the line, not as a TypeError in the tables."""
    expected = {"step": "a whole number (the training step)", "length": "a token count, 0 or more",
                "correct": "true or false", "trained_reward": "a number"}
    fits = {"step": _is_int(sample.step), "length": _is_int(sample.length) and sample.length >= 0,
            "correct": isinstance(sample.correct, bool), "trained_reward": _is_number(sample.trained_reward)}
    for name, ok in fits.items():
        value = getattr(sample, name)
        if value is not None and not ok:
            raise DataError(f"{where}: field {name!r} should be {expected[name]}; got {value!r}.")
    for name in ("rewards", "reward_functions"):
        value = getattr(sample, name)
        if not isinstance(value, dict) or not all(v is None or _is_number(v) for v in value.values()):
            raise DataError(f"{where}: field {name!r} should map each name to a number (or null); got {value!r}.")
    return sample


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_trl_parquet(path: Path, correct_field: str | None) -> list[Sample]:
    samples = []
    for number, row in read_parquet(path):
        if "completion" not in row:
            raise DataError(f"{path}: no 'completion' column (columns: {', '.join(sorted(row))}); "
                            f"TRL's completions files have step, prompt, completion and one column per reward.")
        rewards = {k: float(v) for k, v in row.items()
                   if k not in ("step", "prompt", "completion", "advantage", "image") and isinstance(v, (int, float))}
        system, prompt = _from_messages(row.get("prompt"))
        correct = row.get(correct_field) if correct_field else None
        if correct is not None and not _is_number(correct):
            raise DataError(f"{path}: row {number}: --correct-field {correct_field!r} should hold a number (correct "
                            f"when at least 1); got {correct!r}.")
        samples.append(_checked(Sample(
            completion=_from_messages(row["completion"])[1], prompt=prompt, step=row.get("step"), rewards=rewards,
            system_prompt=system, correct=None if correct is None else correct >= 1.0,
            trained_reward=sum(rewards.values()) if rewards else None), f"{path}: row {number}"))
    return samples


def _from_messages(value) -> tuple[str | None, str]:
    """TRL logs plain text, or chat messages (list of {role, content}): (system prompt, last turn's text)."""
    if isinstance(value, str) or value is None:
        return None, value or ""
    system = next((m["content"] for m in value if m.get("role") == "system"), None)
    turns = [m["content"] for m in value if m.get("role") != "system"]
    return system, turns[-1] if turns else ""


def _text(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} should hold the completion text; got "
                        f"{'nothing' if value is None else type(value).__name__}.")
    return value


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)
