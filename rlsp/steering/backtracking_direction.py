"""``rlsp steer backtracking``: the residual direction that precedes backtracking (arXiv 2507.12638).

For each text (a prompt and its completion), the marker detector of ``rlsp inspect`` finds the
backtracking sentences. The token window ``[start + lo, start + hi]`` before each one (default
-12..-8, as in the paper) is a *window* position; every other completion token is an *other*
position. The vector of layer ``l`` is the mean of layer ``l``'s output over window positions
minus its mean over other positions, saved in the steering-vector format (usable by ``pps``).

The texts are split into a fit part and a held-out part. Separation is Cohen's d of the
projection on the unit vector, window against other positions: on the fit texts per layer (the
layer with the largest is the one reported unless ``layer`` is given), and on the held-out texts,
which never shaped the vector, at every layer. As a control, the same window before sentences
that carry no behaviour at all: a direction that only marks "a sentence ends soon" separates
those as well as the backtracking windows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from rlsp.analysis.behaviours import MarkerDetector, sentence_spans
from rlsp.analysis.rollout_schema import Sample
from rlsp.errors import DataError
from rlsp.steering.activations import chat, generation_prompt_ids


@dataclass
class Positions:
    """Per text: the completion's token positions in the model's input, window and other."""

    window: list[int]
    other: list[int]
    control: list[int] = field(default_factory=list)  # the same window before sentences with no behaviour


@dataclass
class Activations:
    window: list[torch.Tensor] = field(default_factory=list)  # per text (n_window, n_layers, H)
    other: list[torch.Tensor] = field(default_factory=list)
    control: list[torch.Tensor] = field(default_factory=list)


def encode_with_positions(tokenizer, sample: Sample, detector: MarkerDetector, offsets: tuple[int, int],
                          max_tokens: int) -> tuple[list[int], Positions]:
    """The chat-formatted input ids, and window/other positions inside the completion."""
    prompt_ids = generation_prompt_ids(tokenizer, chat(sample.prompt, sample.system_prompt))
    encoded = tokenizer(sample.completion, add_special_tokens=False, return_offsets_mapping=True)
    ids, char_spans = encoded["input_ids"][:max_tokens], encoded["offset_mapping"][:max_tokens]
    spans = detector.detect(sample.completion).spans
    labelled = {s.start for s in spans}
    starts = [s.start for s in spans if s.behaviour == "backtracking"]
    plain = [start for start, _ in sentence_spans(sample.completion) if start not in labelled]
    window = _windows(starts, char_spans, offsets, len(ids))
    control = _windows(plain, char_spans, offsets, len(ids)) - window
    shift = len(prompt_ids)
    other = [t + shift for t in range(len(ids)) if t not in window]
    return prompt_ids + ids, Positions(sorted(t + shift for t in window), other, sorted(t + shift for t in control))


def _windows(char_starts: list[int], char_spans, offsets: tuple[int, int], n_tokens: int) -> set[int]:
    """Token positions ``offsets`` before the token holding each character start."""
    out = set()
    for char in char_starts:
        token = next((t for t, (_, end) in enumerate(char_spans) if end > char), None)
        if token is None:
            continue  # the sentence lies beyond max_tokens
        out.update(t for t in range(token + offsets[0], token + offsets[1] + 1) if 0 <= t < n_tokens)
    return out


@torch.no_grad()
def collect(model, tokenizer, samples: list[Sample], detector: MarkerDetector, offsets: tuple[int, int],
            max_tokens: int, max_other_per_text: int, seed: int, desc: str) -> Activations:
    """Each layer's output at window and (a random subset of) other positions, text by text."""
    device = next(model.parameters()).device
    rng = random.Random(seed)
    out = Activations()
    for sample in tqdm(samples, desc=desc, unit="text"):
        ids, positions = encode_with_positions(tokenizer, sample, detector, offsets, max_tokens)
        if not positions.window:
            continue
        other = positions.other if len(positions.other) <= max_other_per_text else \
            sorted(rng.sample(positions.other, max_other_per_text))
        hidden = model(input_ids=torch.tensor([ids], device=device), output_hidden_states=True, use_cache=False,
                       logits_to_keep=1).hidden_states[1:]
        layers = torch.stack(hidden, dim=2)[0].float()  # (L, n_layers, H)
        out.window.append(layers[positions.window].cpu())
        out.other.append(layers[other].cpu())
        out.control.append(layers[positions.control].cpu())
    return out


def difference_of_means(acts: Activations) -> torch.Tensor:
    """(n_layers, H): mean over all window positions minus mean over all other positions."""
    return torch.cat(acts.window).mean(0) - torch.cat(acts.other).mean(0)


def cohens_d(acts: Activations, vectors: torch.Tensor, against: str = "other", of: str = "window") -> torch.Tensor:
    """(n_layers,) Cohen's d of the projection on each layer's unit vector, ``of`` positions
    ("window" or "control") against ``against`` positions ("other" or "control")."""
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    a = torch.einsum("nlh,lh->nl", torch.cat(getattr(acts, of)), unit)
    b = torch.einsum("nlh,lh->nl", torch.cat(getattr(acts, against)), unit)
    pooled = ((a.var(0) * (len(a) - 1) + b.var(0) * (len(b) - 1)) / (len(a) + len(b) - 2)).sqrt().clamp(min=1e-12)
    return (a.mean(0) - b.mean(0)) / pooled


def split_texts(samples: list[Sample], detector: MarkerDetector, heldout_fraction: float, limit: int | None,
                seed: int) -> tuple[list[Sample], list[Sample]]:
    """Texts with at least one backtracking sentence, shuffled, cut to ``limit``, split fit / held-out."""
    backtracking = [s for s in samples if detector.detect(s.completion).has("backtracking")]
    if len(backtracking) < 4:
        raise DataError(f"{len(backtracking)} of {len(samples)} texts have a backtracking sentence; the direction "
                        f"needs at least 4 (2 to fit, 2 held out). Give texts from a model that backtracks.")
    random.Random(seed).shuffle(backtracking)
    backtracking = backtracking[:limit] if limit else backtracking
    n_heldout = max(2, round(len(backtracking) * heldout_fraction))
    return backtracking[n_heldout:], backtracking[:n_heldout]


def window_counts(acts: Activations) -> dict[str, int]:
    return {"texts": len(acts.window), "window_positions": sum(len(w) for w in acts.window),
            "other_positions": sum(len(o) for o in acts.other),
            "control_positions": sum(len(c) for c in acts.control)}
