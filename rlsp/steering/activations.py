"""Residual-stream activations of a model's responses, averaged over the response tokens.

A response is read as the model would have written it: the conversation through the chat
template with the generation prompt, then the response's tokens. Each decoder layer's output
(``hidden_states[l + 1]``) is averaged over the response tokens alone.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from rlsp.steering.layers import masked_token_mean


def chat(prompt: str, system_prompt: str | None = None) -> list[dict]:
    """The conversation a logged response answered: its system prompt, if any, and the prompt."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return system + [{"role": "user", "content": prompt}]


def generation_prompt_ids(tokenizer, conversation: list[dict]) -> list[int]:
    """The token ids the model saw before its response: the chat template with the generation prompt."""
    prompt = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def encode_responses(tokenizer, conversations: list[list[dict]], responses: list[str]):
    """Right-padded ``input_ids``, ``attention_mask`` and the response-token mask, (N, L) each."""
    rows, masks = [], []
    for conversation, response in zip(conversations, responses, strict=True):
        prompt_ids = generation_prompt_ids(tokenizer, conversation)
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
        rows.append(prompt_ids + response_ids)
        masks.append([0] * len(prompt_ids) + [1] * len(response_ids))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    response = torch.tensor([m + [0] * (width - len(m)) for m in masks])
    return ids, attention, response


@torch.no_grad()
def response_activations(model, tokenizer, conversations: list[list[dict]], responses: list[str],
                         batch_size: int = 8, desc: str = "activations") -> torch.Tensor:
    """(N, n_layers, hidden) float32: each layer's output averaged over each response's tokens."""
    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(responses), batch_size), desc=desc, unit="batch", leave=False):
        ids, attention, response = encode_responses(
            tokenizer, conversations[start : start + batch_size], responses[start : start + batch_size]
        )
        # logits_to_keep=1: the vocabulary projection of every position is not needed here
        hidden = model(input_ids=ids.to(device), attention_mask=attention.to(device), output_hidden_states=True,
                       use_cache=False, logits_to_keep=1).hidden_states[1:]
        layers = torch.stack(hidden, dim=2).float()  # (B, L, n_layers, H)
        out.append(masked_token_mean(layers, response.to(device)).cpu())
    return torch.cat(out)
