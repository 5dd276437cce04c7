"""Generation on a transformers model: chat template, left padding, stop tokens (loop in decode.py)."""

from __future__ import annotations

import torch

from rlsp.generation.backend import Rollout, SamplingParams
from rlsp.generation.decode import decode
from rlsp.generation.packed_linear import packed_linears

# End-of-turn tokens of common chat templates; generation stops at whichever the vocabulary has.
CHAT_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<end_of_turn>")


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """EOS, the chat template's end-of-turn token and the model's own EOS ids."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in CHAT_END_TOKENS if token in vocab)
    model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if model_eos is not None:
        ids.update(model_eos if isinstance(model_eos, list) else [model_eos])
    return sorted(ids)


def render_prompts(tokenizer, conversations: list[list[dict]]) -> list[str]:
    """Apply the chat template (with the assistant turn opened); plain text if there is none."""
    if tokenizer.chat_template:
        return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    return ["\n\n".join(m["content"] for m in c) + "\n\n" for c in conversations]


def completion_mask_from_ids(completion_ids: torch.Tensor, stop_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) mask of tokens up to and including the first stop token, and (B,) bool 'stopped'.

    ``generate`` pads finished rows with the pad token, which is often the EOS token itself, so
    the mask comes from the first stop token, not from comparing with the pad id.
    """
    is_stop = torch.isin(completion_ids, torch.tensor(stop_ids, device=completion_ids.device))
    stopped = is_stop.any(dim=1)
    # Count stop tokens strictly before each position: zero means "still inside the answer".
    stops_before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()
    return (stops_before == 0).long(), stopped


class HFBackend:
    """``GenerationBackend`` on a transformers causal LM (any device), sampled by ``decode``."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.lockstep = None  # set under ZeRO-3 with layer-by-layer gathering (see lockstep.py)
        self.pack_weights = True  # oneDNN-packed weights where they apply (packed_linear.py)

    def sync_weights(self, policy) -> None:
        """Nothing to copy: this backend samples with the trained module itself."""
        if policy is not self.model:
            raise ValueError("HFBackend samples with the module it was built on; build a new backend for another model")

    def release(self) -> None:
        """Nothing held apart from the model the trainer updates."""

    @torch.no_grad()
    def generate(self, conversations: list[list[dict]], params: SamplingParams, samples_per_prompt: int = 1) -> Rollout:
        """``samples_per_prompt`` completions of each conversation, a conversation's samples adjacent."""
        tok = self.tokenizer
        tok.padding_side = "left"
        encoded = tok(render_prompts(tok, conversations), return_tensors="pt", padding=True, add_special_tokens=False)
        device = next(self.model.parameters()).device
        prompt_ids, prompt_mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
        was_training = self.model.training
        self.model.eval()
        try:
            with packed_linears(self.model, self.pack_weights):
                completion_ids, logprobs = decode(self.model, prompt_ids, prompt_mask, params, self.stop_ids,
                                                  tok.pad_token_id, samples_per_prompt, self.lockstep)
        finally:
            self.model.train(was_training)
        mask, stopped = completion_mask_from_ids(completion_ids, self.stop_ids)
        if samples_per_prompt > 1:
            prompt_ids = prompt_ids.repeat_interleave(samples_per_prompt, dim=0)
            prompt_mask = prompt_mask.repeat_interleave(samples_per_prompt, dim=0)
        texts = tok.batch_decode(completion_ids, skip_special_tokens=True)
        return Rollout(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            completion_ids=completion_ids,
            completion_mask=mask,
            logprobs=logprobs,
            texts=texts,
            finish_reasons=["stop" if s else "length" for s in stopped.tolist()],
        )
