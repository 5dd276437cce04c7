"""LLM judge of thinking effort, the paper's second exploration reward.

A local causal LM grades each completion's reasoning on the paper's rubric (diversity of
strategies, depth, creativity/novelty, persistence), explicitly ignoring correctness, and the
grade is parsed into [0, 1]. An unparseable reply scores ``fallback`` (paper: 0.5). To match the
paper when the judge call itself fails (e.g. out of memory), give the reward entry
``on_error: fallback`` and ``fallback_value: 0.5``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from rlsp.errors import ConfigError

JUDGE_TEMPLATE = """\
You are grading the thinking effort shown in a solution to a problem. Do not judge whether the \
solution is correct: a wrong answer reached by careful, varied reasoning deserves a high grade, \
and a right answer stated without reasoning a low one.

Grade the reasoning on:
1. Diversity of strategies: does it try more than one approach?
2. Depth: does it work through the steps and check intermediate results?
3. Creativity and novelty: are some of its ideas non-obvious?
4. Persistence: after a dead end, does it backtrack and try again?

Problem:
{prompt}

Solution:
{completion}

Reply with one line of the form "Score: N/{scale}", where N is a whole number from 0 to {scale}."""

_NUM = r"(\d+(?:\.\d+)?)"
_OVER = r"\s*(?:/|out\s+of)\s*"
_KEYWORD_RE = re.compile(
    rf"(?:score|rating|grade)\s*(?:is|of)?\s*[:=]?\s*{_NUM}(?:{_OVER}{_NUM}|\s*(%))?", re.IGNORECASE
)
_FRACTION_RE = re.compile(rf"{_NUM}{_OVER}{_NUM}", re.IGNORECASE)
_PERCENT_RE = re.compile(rf"{_NUM}\s*%")
_ALONE_RE = re.compile(rf"^\s*{_NUM}\s*\.?\s*$")

_loaded: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_load_lock = threading.Lock()


def _to_unit(number: str, denominator: str | None, scale: float) -> float | None:
    value = float(number)
    if denominator is not None:
        value = value / float(denominator) if float(denominator) > 0 else -1.0
    elif not ("." in number and value <= 1.0):  # "0.7" is already a 0..1 score
        value /= scale
    return value if 0.0 <= value <= 1.0 else None


def parse_score(text: str, scale: float = 10) -> float | None:
    """A judge's reply as a score in [0, 1], or None if it holds no usable grade.

    Looks for, in order: the last "Score/Rating/Grade: N" (optionally "/M" or "out of M"), the
    last "N/M" or "N out of M", the last "N%", and a reply that is a number alone. An explicit
    denominator wins over ``scale``; a bare number is out of ``scale`` unless it is a decimal
    no greater than 1 ("0.7"). Markdown emphasis is ignored ("**8**/10"). Grades outside
    [0, 1] after scaling give None.
    """
    text = text.replace("*", "").replace("`", "")
    keyword = list(_KEYWORD_RE.finditer(text))
    if keyword:
        number, denominator, percent = keyword[-1].groups()
        return _to_unit(number, "100" if percent else denominator, scale)
    fractions = list(_FRACTION_RE.finditer(text))
    if fractions:
        return _to_unit(fractions[-1].group(1), fractions[-1].group(2), scale)
    percents = list(_PERCENT_RE.finditer(text))
    if percents:
        return _to_unit(percents[-1].group(1), "100", scale)
    alone = _ALONE_RE.match(text)
    return _to_unit(alone.group(1), None, scale) if alone else None


def _truncate_middle(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}"


def _model_and_tokenizer(model: Any, dtype: str, device: str) -> tuple[Any, Any]:
    if isinstance(model, (tuple, list)) and len(model) == 2:
        return model[0], model[1]
    if not isinstance(model, str):
        raise ConfigError(
            "judge: model must be a model name or path, or a (model, tokenizer) pair; "
            f"got {type(model).__name__}"
        )
    key = (model, dtype, device)
    with _load_lock:  # loaded once per name, shared by every call and thread
        if key not in _loaded:
            from rlsp.modeling.causal_lm import load_causal_lm

            _loaded[key] = load_causal_lm(model, dtype=dtype, device=device)
        return _loaded[key]


def _generate(
    model: Any, tokenizer: Any, texts: list[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    import torch

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends to the right of every prompt
    replies = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=not tokenizer.chat_template,  # the template adds its own
        ).to(model.device)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        replies += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return replies


def judge(
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[str],
    *,
    model: Any,
    scale: float = 10,
    fallback: float = 0.5,
    template: str = JUDGE_TEMPLATE,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    max_completion_chars: int = 16000,
    dtype: str = "auto",
    device: str = "auto",
    **columns,
) -> list[float]:
    """Thinking-effort grade in [0, 1] for each completion, from a local judge LM.

    Args:
        model: a model name or path (loaded once with ``rlsp.modeling.causal_lm.load_causal_lm`` and cached)
            or a ``(model, tokenizer)`` pair.
        scale: the top of the grading scale the template asks for ("Score: N/10").
        fallback: the score of a reply that holds no grade (paper: 0.5).
        template: the judge prompt, with ``{prompt}``, ``{completion}`` and ``{scale}``.
        max_completion_chars: longer completions keep their head and tail.

    Decoding is greedy; the chat template is applied when the tokenizer has one.
    """
    if "{completion}" not in template:
        raise ConfigError(
            "judge: template must contain {completion} (and usually {prompt}, {scale})"
        )
    lm, tokenizer = _model_and_tokenizer(model, dtype, device)
    texts = []
    for prompt, completion in zip(prompts, completions, strict=True):
        content = template.format(
            prompt=prompt,
            completion=_truncate_middle(completion, max_completion_chars),
            scale=f"{scale:g}",
        )
        if tokenizer.chat_template:
            content = tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        texts.append(content)
    replies = _generate(lm, tokenizer, texts, max_new_tokens, batch_size)
    scores = [parse_score(reply, scale) for reply in replies]
    return [fallback if s is None else s for s in scores]
