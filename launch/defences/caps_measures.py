"""What the defences experiment measures: trait expression (share of upper-case letters in
greedy answers to held-out questions with no system prompt), the answers' projection on the caps
vector, and the gradients of one fixed batch under baseline, PPS and IP."""

from __future__ import annotations

import torch
from caps_reward import upper_share

from rlsp.generation import SamplingParams, generate_all, make_backend
from rlsp.hooks import HookRunner
from rlsp.hooks.diagnostics import cosine
from rlsp.hooks.steering import PreventativeSteering
from rlsp.steering.activations import encode_responses
from rlsp.steering.project import project_texts
from rlsp.steering.vectors import SteeringVectors


def user_turn(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def answers(model, tokenizer, questions: list[str], max_new_tokens: int, desc: str,
            system_prompt: str | None = None) -> list[str]:
    backend = make_backend(model, tokenizer)
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    conversations = [system + user_turn(q) for q in questions]
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    return [c.text for c in generate_all(backend, conversations, params, batch_size=64, desc=desc)]


def trait_expression(model, tokenizer, questions: list[str], vectors: SteeringVectors, layer: int,
                     max_new_tokens: int, desc: str) -> dict:
    texts = answers(model, tokenizer, questions, max_new_tokens, desc)
    rows = [{"prompt": q, "completion": t} for q, t in zip(questions, texts, strict=True)]
    projection = project_texts(model, tokenizer, vectors, rows, batch_size=16)[:, layer]
    return {
        "caps_share": sum(upper_share(t) for t in texts) / len(texts),
        "projection": float(projection.mean()),
        "examples": texts[:3],
    }


def response_loss(model, tokenizer, conversations: list[list[dict]], responses: list[str]) -> torch.Tensor:
    """Mean next-token loss over the response tokens (what SFT trains on), in the autograd graph."""
    ids, attention, response = encode_responses(tokenizer, conversations, responses)
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    mask = response[:, 1:].float()
    return (losses * mask).sum() / mask.sum()


def batch_loss(model, tokenizer, conversations: list[list[dict]], responses: list[str], hook=None) -> float:
    """``response_loss`` with ``hook`` (e.g. PPS) attached and active."""
    runner = HookRunner([hook] if hook else [], "sft", lambda: model)
    runner.fire("train_start")
    try:
        with torch.no_grad(), runner.around("forward", role="policy", grad=True):
            return float(response_loss(model, tokenizer, conversations, responses))
    finally:
        runner.end()


def choose_coef(model, tokenizer, questions, responses, vectors_file: str, layer: int,
                grid=(0.1, 0.25, 0.5, 1.0, 2.0)) -> dict:
    """The PPS coefficient that lowers the loss of trait data the most before training: steering
    supplies the trait, so the weights need not learn it (a coefficient that raises the loss only
    breaks the model)."""
    conversations = [user_turn(q) for q in questions]
    losses = {c: batch_loss(model, tokenizer, conversations, responses, PreventativeSteering(vectors_file, layer, c))
              for c in grid}
    plain = batch_loss(model, tokenizer, conversations, responses)
    return {"coef": min(losses, key=losses.get), "loss_without": plain, "loss_by_coef": losses}


def batch_gradients(model, tokenizer, conversations: list[list[dict]], responses: list[str]) -> dict:
    """Parameter gradients of the mean next-token loss on the responses (what SFT trains on)."""
    model.zero_grad(set_to_none=True)
    response_loss(model, tokenizer, conversations, responses).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def arm_gradient_cosines(model, tokenizer, questions: list[str], responses: list[str], pps: PreventativeSteering,
                         ip_prompt: str) -> dict:
    """Cosines between the gradients of one batch under baseline, PPS and IP (the same weights)."""
    model.train()
    plain = [user_turn(q) for q in questions]
    baseline = batch_gradients(model, tokenizer, plain, responses)
    runner = HookRunner([pps], "sft", lambda: model)
    runner.fire("train_start")
    with runner.around("forward", role="policy", grad=True):
        steered = batch_gradients(model, tokenizer, plain, responses)
    runner.end()
    inoculated = batch_gradients(model, tokenizer, [[{"role": "system", "content": ip_prompt}] + c for c in plain],
                                 responses)
    model.eval()
    return {"baseline_vs_pps": cosine(baseline, steered), "baseline_vs_ip": cosine(baseline, inoculated),
            "pps_vs_ip": cosine(steered, inoculated)}
