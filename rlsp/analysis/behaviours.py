"""Reasoning behaviours in a completion: which sentences backtrack, verify, explore or hedge.

The unit is the sentence (as in the behaviour-taxonomy papers): a sentence carries a behaviour
when it contains one of its marker phrases, and may carry several. Per completion the detector
gives the labelled sentence spans (character offsets), the count of sentences per behaviour and
that count per 1,000 tokens. Tokens are the model's own count where the log has it (``length``
in rlsp's logs); elsewhere they are estimated as words plus punctuation marks, and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlsp.analysis.markers import DEFAULT_MARKERS, compile_markers

# A sentence ends at . ! or ? followed by white space, or at a line break; "x = 1.5" does not split.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN_ESTIMATE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Span:
    start: int  # character offsets into the completion, end exclusive
    end: int
    behaviour: str
    marker: str  # the phrase that matched, as written in the text


@dataclass
class BehaviourProfile:
    counts: dict[str, int]  # sentences carrying each behaviour
    spans: list[Span]
    tokens: int
    tokens_estimated: bool = False
    sentences: int = 0
    labeller: str = "markers"

    def has(self, behaviour: str) -> bool:
        return self.counts.get(behaviour, 0) > 0

    def rate_per_1k(self, behaviour: str) -> float:
        return 1000.0 * self.counts.get(behaviour, 0) / max(self.tokens, 1)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank sentence, white space trimmed."""
    spans, start = [], 0
    for boundary in [*_SENTENCE_END.finditer(text), None]:
        end = boundary.start() if boundary else len(text)
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        start = boundary.end() if boundary else len(text)
    return spans


def estimate_tokens(text: str) -> int:
    return len(_TOKEN_ESTIMATE.findall(text))


class MarkerDetector:
    """Labels sentences by marker phrases (``DEFAULT_MARKERS`` unless given a replacement)."""

    name = "markers"

    def __init__(self, markers: dict[str, tuple[str, ...]] | None = None):
        self.markers = dict(markers or DEFAULT_MARKERS)
        self.behaviours = tuple(self.markers)
        self._patterns = compile_markers(self.markers)

    def detect(self, text: str, tokens: int | None = None) -> BehaviourProfile:
        # Curly apostrophes (R1 writes "that’s") match the plain ones of the marker lists;
        # one character for one, so the offsets stay those of the original text.
        plain = text.replace("\u2019", "'")
        sentences = sentence_spans(plain)
        spans = []
        for start, end in sentences:
            for behaviour, pattern in self._patterns.items():
                found = pattern.search(plain, start, end)
                if found:
                    spans.append(Span(start, end, behaviour, text[found.start():found.end()]))
        return profile_from_spans(text, tokens, spans, self.behaviours, self.name, len(sentences))

    def detect_all(self, texts: list[str], tokens: list[int | None] | None = None) -> list[BehaviourProfile]:
        tokens = tokens or [None] * len(texts)
        return [self.detect(t, n) for t, n in zip(texts, tokens, strict=True)]


def profile_from_spans(text: str, tokens: int | None, spans: list[Span], behaviours: tuple[str, ...],
                       labeller: str, n_sentences: int | None = None) -> BehaviourProfile:
    """Counts per behaviour and the token count, from the spans a labeller chose."""
    counts = {b: 0 for b in behaviours}
    for span in spans:
        counts[span.behaviour] = counts.get(span.behaviour, 0) + 1
    estimated = tokens is None
    return BehaviourProfile(counts, spans, estimate_tokens(text) if estimated else tokens, estimated,
                            len(sentence_spans(text)) if n_sentences is None else n_sentences, labeller)
