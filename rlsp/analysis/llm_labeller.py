"""An optional sentence labeller that asks a local causal LM, with the marker detector as fallback.

Each sentence gets one label of the behaviour taxonomy of arXiv 2506.18167 (METHOD.md):
initializing, deduction, adding-knowledge, example-testing, uncertainty-estimation, backtracking.
The model sees the sentence, the one before it, and the labels as lettered choices; the label is
the letter with the highest next-token logit (one forward pass per sentence, batched, left
padded). Where the model is unsure (its probability for the winning letter, renormalised over
the six, is below ``min_confidence``) and the marker detector labels the sentence, the marker
label is used instead (backtracking, uncertainty -> uncertainty-estimation, verification ->
example-testing), so small models do not drown clear markers in noise.
"""

from __future__ import annotations

import string

import torch
from tqdm.auto import tqdm

from rlsp.analysis.behaviours import (
    BehaviourProfile,
    MarkerDetector,
    Span,
    profile_from_spans,
    sentence_spans,
)

TAXONOMY = ("initializing", "deduction", "adding-knowledge", "example-testing", "uncertainty-estimation",
            "backtracking")
DESCRIPTIONS = {
    "initializing": "restating the problem or planning the first step",
    "deduction": "deriving a result from what is known",
    "adding-knowledge": "recalling a fact, formula or definition",
    "example-testing": "checking a claim on an example or verifying a result",
    "uncertainty-estimation": "expressing doubt or confidence",
    "backtracking": "abandoning or revising an earlier step",
}
MARKER_TO_TAXONOMY = {"backtracking": "backtracking", "uncertainty": "uncertainty-estimation",
                      "verification": "example-testing"}


class LLMLabeller:
    name = "llm"
    behaviours = TAXONOMY

    def __init__(self, model_name_or_path: str, fallback: MarkerDetector | None = None, batch_size: int = 16,
                 min_confidence: float = 0.5, model=None, tokenizer=None):
        if model is None:
            from rlsp.modeling.causal_lm import load_causal_lm

            model, tokenizer = load_causal_lm(model_name_or_path, device="auto")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.source = model_name_or_path
        self.fallback = fallback or MarkerDetector()
        self.batch_size, self.min_confidence = batch_size, min_confidence
        self.letters = string.ascii_uppercase[: len(TAXONOMY)]
        self.letter_ids = [self._single_token(" " + c) for c in self.letters]

    def label(self, texts: list[str], tokens: list[int | None] | None = None) -> list[BehaviourProfile]:
        tokens = tokens or [None] * len(texts)
        sentences = [sentence_spans(t) for t in texts]
        prompts = [self._prompt(text, spans, j)
                   for text, spans in zip(texts, sentences, strict=True) for j in range(len(spans))]
        choices = self.choose(prompts)
        profiles, k = [], 0
        for text, spans, n in zip(texts, sentences, tokens, strict=True):
            markers = self._marker_labels(text)
            labelled = []
            for start, end in spans:
                label, confidence = choices[k]
                k += 1
                fallback = markers.get((start, end))
                if confidence < self.min_confidence and fallback:
                    labelled.append(Span(start, end, fallback, "markers"))
                else:
                    labelled.append(Span(start, end, label, f"llm p={confidence:.2f}"))
            profiles.append(profile_from_spans(text, n, labelled, TAXONOMY, f"llm:{self.source}", len(spans)))
        return profiles

    @torch.no_grad()
    def choose(self, prompts: list[str]) -> list[tuple[str, float]]:
        """(label, probability renormalised over the choices) per prompt."""
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = []
        for start in tqdm(range(0, len(prompts), self.batch_size), desc="labelling sentences", unit="batch",
                          leave=False, disable=len(prompts) <= self.batch_size):
            batch = prompts[start:start + self.batch_size]
            rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in batch]
            width = max(map(len, rows))
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)  # left padded
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=False,
                                logits_to_keep=1).logits[:, -1, self.letter_ids].float()
            probs = logits.softmax(-1)
            best = probs.argmax(-1)
            out += [(TAXONOMY[b], probs[i, b].item()) for i, b in enumerate(best.tolist())]
        return out

    def _prompt(self, text: str, spans: list[tuple[int, int]], j: int) -> str:
        before = text[spans[j - 1][0]:spans[j - 1][1]] if j else "(start of the solution)"
        options = "\n".join(f"{c}) {t}: {DESCRIPTIONS[t]}" for c, t in zip(self.letters, TAXONOMY, strict=True))
        question = (f"Classify one step of a math solution.\nPrevious step: {before}\n"
                    f"Step: {text[spans[j][0]:spans[j][1]]}\nWhich kind of step is it?\n{options}")
        chat = [{"role": "user", "content": question}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) + "Answer:"
        return question + "\nAnswer:"

    def _marker_labels(self, text: str) -> dict[tuple[int, int], str]:
        """The first marker behaviour with a taxonomy label, per sentence range."""
        labels = {}
        for span in self.fallback.detect(text).spans:
            mapped = MARKER_TO_TAXONOMY.get(span.behaviour)
            if mapped and (span.start, span.end) not in labels:
                labels[(span.start, span.end)] = mapped
        return labels

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-1]  # " A" may be one token or a space then "A": the letter is the last
