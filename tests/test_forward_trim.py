"""Forward passes over length-trimmed micro-batches give the numbers of the padded batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.modeling.networks import Critic
from rlsp.training.forward import Sequences, completion_logprobs, completion_values


def padded_sequences(extra_left: int, extra_right: int) -> Sequences:
    """Two rows (prompt 3 and 2 tokens, completion 2 and 4 tokens) with extra all-pad columns."""
    prompt_ids = torch.tensor([[5, 6, 7], [0, 8, 9]])
    prompt_mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    completion_ids = torch.tensor([[10, 11, 0, 0], [12, 13, 14, 15]])
    completion_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    return Sequences(F.pad(prompt_ids, (extra_left, 0)), F.pad(prompt_mask, (extra_left, 0)),
                     F.pad(completion_ids, (0, extra_right)), F.pad(completion_mask, (0, extra_right)))


def untrimmed_logprobs(model, seqs: Sequences) -> torch.Tensor:
    """The plain path: every column through the model, as before trimming existed."""
    P, T = seqs.prompt_ids.shape[1], seqs.completion_ids.shape[1]
    logits = model(**seqs.inputs(), use_cache=False).logits[:, P - 1 : P + T - 1].float()
    return torch.log_softmax(logits, -1).gather(-1, seqs.completion_ids[..., None])[..., 0]


def test_trimmed_drops_only_shared_padding():
    seqs = padded_sequences(extra_left=3, extra_right=5).trimmed()
    assert seqs.prompt_ids.tolist() == [[5, 6, 7], [0, 8, 9]]
    assert seqs.completion_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_logprobs_and_values_equal_the_untrimmed_pass(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    padded = padded_sequences(extra_left=3, extra_right=5)
    with torch.no_grad():
        logp, entropy = completion_logprobs(model, padded, temperature=1.0, with_entropy=True)
        reference = untrimmed_logprobs(model, padded)
    mask = padded.completion_mask.bool()
    assert logp.shape == entropy.shape == (2, 9)
    assert torch.allclose(logp[mask], reference[mask], atol=1e-5)
    assert (logp[~mask] == 0).all() and (entropy[~mask] == 0).all()  # the head runs on real tokens only

    critic = Critic(model, n_heads=2)
    with torch.no_grad():
        values = completion_values(critic, padded)
        P = padded.prompt_ids.shape[1]
        plain = critic(**padded.inputs())[:, P - 1 : P + 4 - 1]
    assert values.shape == (2, 9, 2)
    assert torch.allclose(values[:, :4][mask[:, :4]], plain[mask[:, :4]], atol=1e-5)


def test_chunked_logprobs_equal_one_chunk_in_values_and_gradients(tiny_model_dir, monkeypatch):
    """Log-probs over chunks of tokens (checkpointed under autograd) against the whole
    completion at once: the same log-probs, entropy and parameter gradients."""
    from rlsp.training import forward

    model, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    model.train()
    seqs = padded_sequences(extra_left=1, extra_right=2)

    def run():
        model.zero_grad(set_to_none=True)
        logp, entropy = completion_logprobs(model, seqs, temperature=0.7, with_entropy=True, entropy_grad=True)
        (logp.sum() - 0.1 * entropy.sum()).backward()
        return logp.detach(), entropy.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    whole = run()
    vocab = model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(forward, "LOGITS_BUDGET_BYTES", 4 * vocab)  # one token per chunk
    chunked = run()
    assert torch.allclose(chunked[0], whole[0], atol=1e-6) and torch.allclose(chunked[1], whole[1], atol=1e-6)
    assert chunked[2].keys() == whole[2].keys()
    for name, grad in whole[2].items():
        assert torch.allclose(chunked[2][name], grad, atol=1e-6), name
    # and against the plain pass through the model's own logits
    mask = seqs.completion_mask.bool()
    assert torch.allclose(whole[0][mask], untrimmed_logprobs_at(model, seqs, 0.7)[mask], atol=1e-5)


def untrimmed_logprobs_at(model, seqs: Sequences, temperature: float) -> torch.Tensor:
    P, T = seqs.prompt_ids.shape[1], seqs.completion_ids.shape[1]
    with torch.no_grad():
        logits = model(**seqs.inputs(), use_cache=False).logits[:, P - 1 : P + T - 1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, seqs.completion_ids[..., None])[..., 0]
