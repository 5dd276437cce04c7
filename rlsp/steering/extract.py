"""``rlsp steer extract``: difference-of-means steering vectors from contrastive system prompts.

For each question of the recipe's ``data`` section the model answers twice, once under
``steer.positive_system_prompt`` (eliciting the trait) and once under
``steer.negative_system_prompt`` (suppressing it), or the answers come from
``steer.responses_file``. Each answer is read back under the prompt it was given, and the
vector of layer ``l`` is ``mean(positive activations) - mean(negative activations)`` of that
layer's output, averaged over response tokens (the persona-vectors recipe, METHOD.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from rlsp.config import Recipe
from rlsp.data import check_source, load_examples
from rlsp.data.prompts import chat_messages
from rlsp.data.rows import read_rows
from rlsp.errors import ConfigError, DataError
from rlsp.steering.activations import response_activations
from rlsp.steering.vectors import SteeringVectors, architecture_of


@dataclass
class Contrast:
    questions: list[str]
    positive: list[list[dict]]  # conversations under the eliciting prompt
    negative: list[list[dict]]
    positive_responses: list[str]
    negative_responses: list[str]


def check_steer_recipe(recipe: Recipe, base_dir: Path | None) -> None:
    """What ``rlsp steer extract`` checks before loading the model (``rlsp validate`` runs it too)."""
    cfg = recipe.steer
    if not cfg.positive_system_prompt:
        raise ConfigError("steer.positive_system_prompt: set the system prompt that elicits the trait.")
    if cfg.positive_system_prompt.strip() == (cfg.negative_system_prompt or "").strip():
        raise ConfigError("steer.negative_system_prompt: the same as steer.positive_system_prompt, so the two sets "
                          "of answers would differ in nothing and every vector would be zero; give a prompt that "
                          "suppresses the trait, or null for no system prompt.")
    if cfg.responses_file is not None:
        read_responses(recipe, base_dir)
    else:  # the questions come from the data section
        check_source(recipe.data, base_dir)


def read_responses(recipe: Recipe, base_dir: Path | None) -> list[dict]:
    """The rows of ``steer.responses_file``, each with a question and both responses."""
    read = read_rows(recipe.steer.responses_file, split="train", base_dir=base_dir, field="steer.responses_file")
    missing = [n for n, r in read.rows if not all(isinstance(r.get(k), str) and r[k].strip()
                                                  for k in ("question", "positive", "negative"))]
    if missing or not read.rows:
        raise DataError(f"steer.responses_file: {read.where}: " + (
            f"lines {missing[:5]} lack a question, positive or negative text." if missing else "no rows.")
            + " Each line needs {\"question\": ..., \"positive\": ..., \"negative\": ...}.")
    return [row for _, row in read.rows]


def contrast_set(recipe: Recipe, base_dir: Path | None, model=None, tokenizer=None) -> Contrast:
    """The questions under both prompts, with responses read from the file or generated."""
    cfg = recipe.steer
    if cfg.responses_file is not None:
        rows = read_responses(recipe, base_dir)
        questions = [r["question"] for r in rows]
    else:
        questions = [e.prompt for e in load_examples(recipe.data, recipe.run.seed, base_dir).examples]
    from rlsp.data import Example

    def conversations(system: str | None) -> list[list[dict]]:
        data = replace(recipe.data, system_prompt=system)
        return [chat_messages(Example(q, ""), data) for q in questions]

    positive, negative = conversations(cfg.positive_system_prompt), conversations(cfg.negative_system_prompt)
    if cfg.responses_file is not None:
        return Contrast(questions, positive, negative, [r["positive"] for r in rows], [r["negative"] for r in rows])
    from rlsp.generation import generate_all, make_backend, resolve_backend, sampling_params

    backend = make_backend(model, tokenizer, recipe.generation, recipe.run.seed, resolve_backend(recipe))
    params, batch = sampling_params(recipe.generation), recipe.generation.batch_size
    pos = generate_all(backend, positive, params, batch, desc="answers (eliciting prompt)")
    neg = generate_all(backend, negative, params, batch, desc="answers (suppressing prompt)")
    return Contrast(questions, positive, negative, [c.text for c in pos], [c.text for c in neg])


def extract_vectors(recipe: Recipe, model, tokenizer, contrast: Contrast) -> SteeringVectors:
    cfg = recipe.steer
    positive = response_activations(model, tokenizer, contrast.positive, contrast.positive_responses,
                                    cfg.batch_size, desc="activations (eliciting)")
    negative = response_activations(model, tokenizer, contrast.negative, contrast.negative_responses,
                                    cfg.batch_size, desc="activations (suppressing)")
    vectors = positive.mean(0) - negative.mean(0)  # (n_layers, hidden)
    # How well each layer's direction separates the two sets: projections of the per-response
    # activations, their means and the pooled standard deviation (Cohen's d).
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    pos_proj, neg_proj = (torch.einsum("nlh,lh->nl", a, unit) for a in (positive, negative))
    pooled = ((pos_proj.var(0, unbiased=True) + neg_proj.var(0, unbiased=True)) / 2).sqrt().clamp(min=1e-12)
    info = {
        "trait": cfg.trait,
        "positive_system_prompt": cfg.positive_system_prompt,
        "negative_system_prompt": cfg.negative_system_prompt,
        "questions": len(contrast.questions),
        "responses": "file" if cfg.responses_file else "generated",
        "separation_d": [round(float(d), 3) for d in (pos_proj.mean(0) - neg_proj.mean(0)) / pooled],
    }
    return SteeringVectors(vectors, recipe.model.name_or_path, architecture_of(model.config), info)


def write_examples(path: Path, contrast: Contrast) -> None:
    """The responses the vectors came from, so a researcher can read what the contrast was."""
    with path.open("w") as f:
        for q, p, n in zip(contrast.questions, contrast.positive_responses, contrast.negative_responses, strict=True):
            f.write(json.dumps({"question": q, "positive": p, "negative": n}, ensure_ascii=False) + "\n")
