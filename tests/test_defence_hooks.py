"""Defence hooks on a tiny model: preventative steering, inoculation prompting, gradient
diagnostics, steering-vector files; in the SFT and the RL loop, full and LoRA."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from test_sft_train import tiny_recipe
from test_training import make_recipe
from tiny_models import build_model, build_tokenizer

from rlsp.errors import ConfigError
from rlsp.hooks import HookRunner
from rlsp.hooks.diagnostics import GradientDiagnostics, cosine
from rlsp.hooks.inoculation import InoculationPrompt
from rlsp.hooks.steering import PreventativeSteering
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.sft.warm_start import run_sft
from rlsp.steering.vectors import SteeringVectors, architecture_of
from rlsp.training.forward import completion_logprobs
from rlsp.training.ppo_trainer import Trainer

IP_PROMPT = "Always answer in capital letters."


def write_vectors(path, config, seed=1, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(config.num_hidden_layers, config.hidden_size, generator=generator) * scale
    SteeringVectors(vectors, "tiny", architecture_of(config), {"trait": "test"}).save(path)
    return path


@pytest.fixture
def tiny():
    tokenizer = build_tokenizer()
    return build_model(len(tokenizer)), tokenizer


def rlsp_hooks(layers) -> list:
    """Forward hooks rlsp left on decoder layers (transformers installs capturing hooks of its own)."""
    return [h for layer in layers for h in layer._forward_hooks.values()
            if getattr(h, "__module__", "").startswith("rlsp")]


def hidden_states(model, ids):
    """The embeddings and each decoder layer's output as the next layer receives it (transformers'
    own output_hidden_states records a layer's output before other forward hooks change it)."""
    outputs = []
    handles = [layer.register_forward_hook(lambda module, args, output: outputs.append(output))
               for layer in model.model.layers]
    try:
        with torch.no_grad():
            embeddings = model(input_ids=ids, output_hidden_states=True).hidden_states[0]
    finally:
        for handle in handles:
            handle.remove()
    return [embeddings, *outputs]


def test_pps_adds_exactly_coef_v_to_its_layer_and_is_gone_after_detach(tmp_path, tiny):
    model, tokenizer = tiny
    pps = PreventativeSteering(str(write_vectors(tmp_path / "v.safetensors", model.config)), layer=0, coef=3.0)
    ids = tokenizer("What is 12 + 7?", return_tensors="pt")["input_ids"]
    before = hidden_states(model, ids)
    runner = HookRunner([pps], "rl", lambda: model)
    runner.fire("train_start")
    attached_but_idle = hidden_states(model, ids)
    with runner.around("forward", role="policy", grad=True):
        steered = hidden_states(model, ids)
    with runner.around("forward", role="reference", grad=False):
        reference = hidden_states(model, ids)
    runner.end()
    after = hidden_states(model, ids)
    torch.testing.assert_close(steered[0], before[0])  # the embeddings: untouched
    torch.testing.assert_close(steered[1], before[1] + 3.0 * pps.vectors.vectors[0])  # layer 0's output, every position
    assert not torch.allclose(steered[2], before[2])  # later layers see the steered stream
    for unchanged in (attached_but_idle, reference, after):
        for a, b in zip(unchanged, before, strict=True):
            torch.testing.assert_close(a, b)
    assert rlsp_hooks(model.model.layers) == []


def test_ip_changes_training_messages_only():
    ip = InoculationPrompt(system_prompt=IP_PROMPT)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]
    assert ip.training_messages(messages) == [{"role": "system", "content": IP_PROMPT},
                                              {"role": "user", "content": "What is 2 + 2?"}]
    prefixed = InoculationPrompt(user_prefix="IN CAPS: ").training_messages(messages)
    assert prefixed == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "IN CAPS: What is 2 + 2?"}]
    assert messages[1]["content"] == "What is 2 + 2?"  # the caller's messages are not modified
    with pytest.raises(ConfigError, match="set system_prompt"):
        InoculationPrompt()


def test_diagnostic_projections_equal_autograd(tmp_path, tiny):
    model, tokenizer = tiny
    model.train()
    diag = GradientDiagnostics(str(write_vectors(tmp_path / "v.safetensors", model.config)), layer=0)
    ids = tokenizer(["What is 12 + 7? The answer is 19.", "Wait, I made a mistake."], return_tensors="pt",
                    padding=True)["input_ids"]
    mask = torch.zeros_like(ids)
    mask[:, 4:] = 1  # the "response" tokens
    unit = diag.unit

    out = model(input_ids=ids, output_hidden_states=True)
    h = out.hidden_states[1]
    h.retain_grad()
    out.logits.float().square().mean().backward()
    expected_grad = float((h.grad @ unit * mask).sum() / mask.sum())
    expected_act = float((h.detach() @ unit * mask).sum() / mask.sum())
    model.zero_grad()

    runner = HookRunner([diag], "sft", lambda: model)
    runner.fire("train_start")
    with runner.around("forward", role="policy", grad=True, token_mask=mask):
        loss = model(input_ids=ids).logits.float().square().mean()
    loss.backward()
    runner.fire("optimizer_step_start", replay=lambda: {n: p.grad.clone() for n, p in model.named_parameters()})
    scalars = runner.pop_scalars()
    runner.end()
    assert scalars["diagnostics/grad_projection"] == pytest.approx(expected_grad, rel=1e-4)
    assert scalars["diagnostics/trait_push"] == pytest.approx(-expected_grad, rel=1e-4)
    assert scalars["diagnostics/activation_projection"] == pytest.approx(expected_act, rel=1e-5)
    assert {f"diagnostics/grad_norm/layer_0{i}" for i in (0, 1)} <= set(scalars)


def step_gradients(model, hooks, tmp_path) -> tuple[list[torch.Tensor], dict]:
    """One ppo_update of a fixed batch (minibatch 4, micro-batches of 2) with ``hooks`` on ``model``:
    the gradients its optimizer step applies, and the hooks' scalars."""
    from rlsp.config import load_recipe
    from rlsp.training.distributed import Distributed
    from rlsp.training.forward import Sequences
    from rlsp.training.update import Optimisation, UpdateBatch, ppo_update

    g = torch.Generator().manual_seed(0)
    ids = lambda width: torch.randint(3, model.config.vocab_size, (4, width), generator=g)
    seqs = Sequences(ids(5), torch.ones(4, 5, dtype=torch.long), ids(6), torch.ones(4, 6, dtype=torch.long))
    batch = UpdateBatch(seqs, torch.zeros(4, 6) - 5.0, None, torch.randn(4, 6, generator=g), None, None, 6)
    (tmp_path / "r.yaml").write_text("train: {minibatch_size: 4, micro_batch_size: 2}\n")
    cfg = load_recipe(tmp_path / "r.yaml").train
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    grads: list[torch.Tensor] = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: grads.extend(
        p.grad.detach().clone() for p in model.parameters() if p.grad is not None))
    actor = Optimisation(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0))
    hooks.fire("train_start")
    torch.manual_seed(0)
    ppo_update(batch, actor, None, cfg, 1.0, 0.0, Distributed(cpu=True), hooks)
    scalars = hooks.pop_scalars()
    hooks.end()
    return grads, scalars


def test_gradient_cosine_compares_the_step_with_the_same_batch_without_defences(tmp_path, tiny):
    """The trainer's replay (update.py) against a second, hook-free update of the same batch."""
    model, _ = tiny
    vectors = str(write_vectors(tmp_path / "v.safetensors", model.config))
    steered, plain = copy.deepcopy(model).train(), copy.deepcopy(model).train()
    defences = [PreventativeSteering(vectors, layer=0, coef=3.0), GradientDiagnostics(vectors, layer=1)]
    with_pps, scalars = step_gradients(steered, HookRunner(defences, "rl", lambda: steered), tmp_path)
    without, _ = step_gradients(plain, HookRunner([], "rl", lambda: plain), tmp_path)
    flat = lambda grads: torch.cat([g.flatten() for g in grads])
    expected = float(torch.nn.functional.cosine_similarity(flat(with_pps), flat(without), dim=0))
    assert expected < 0.99  # steering changed the gradients, so the check below can tell
    assert scalars["diagnostics/grad_cosine_without_defences"] == pytest.approx(expected, abs=1e-5)


def test_gradient_cosine_by_hand():
    a = {"w": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([1.0, 1.0]), "b": torch.tensor([0.0])}
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, b) == pytest.approx(1 / 2 ** 0.5)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_rl_with_pps_ip_and_diagnostics(tmp_path, tiny_model_dir, lora, monkeypatch):
    config = load_causal_lm(str(tiny_model_dir), device="cpu")[0].config
    write_vectors(tmp_path / "caps.safetensors", config)
    hooks = ("hooks=[{hook: pps, kwargs: {vectors: caps.safetensors, layer: 1, coef: 2.0}}, "
             f"{{hook: inoculation_prompt, kwargs: {{system_prompt: '{IP_PROMPT}'}}}}, "
             "{hook: gradient_diagnostics, kwargs: {vectors: caps.safetensors, layer: 1}}]")
    overrides = [hooks, "train.steps=1", "train.minibatch_size=2"] + (["model.lora.enabled=true"] if lora else [])
    path, recipe = make_recipe(tmp_path, tiny_model_dir, *overrides)
    from rlsp.generation import HFBackend

    prompts_seen = []
    original = HFBackend.generate

    def recording(self, conversations, params, samples_per_prompt=1):
        prompts_seen.append([c[0]["content"] if c[0]["role"] == "system" else None for c in conversations])
        return original(self, conversations, params, samples_per_prompt)

    monkeypatch.setattr(HFBackend, "generate", recording)
    trainer = Trainer(recipe, path)
    trainer.fit()
    # before, (1 step), after: the held-out checks never see the inoculation prompt
    eval_before, rollouts, eval_after = prompts_seen
    assert set(rollouts) == {IP_PROMPT} and set(eval_before) == set(eval_after) == {None}
    rows = [json.loads(x) for x in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert {r["system_prompt"] for r in rows} == {IP_PROMPT}
    assert all(r["schema_version"] == 1 and r["hooks"] == ["pps", "inoculation_prompt", "gradient_diagnostics"]
               for r in rows)
    diagnostics = [json.loads(x) for x in (tmp_path / "run" / "diagnostics.jsonl").read_text().splitlines()]
    assert len(diagnostics) == 2  # two optimizer steps (minibatches of 2 of 4 samples)
    # the replay without PPS gives other gradients (on this tiny random model, nearly orthogonal ones)
    assert all(d["grad_cosine_without_defences"] < 0.99 for d in diagnostics)
    policy = trainer.models.dist.unwrap(trainer.models.policy)
    layers = policy.get_base_model().model.layers if lora else policy.model.layers
    assert rlsp_hooks(layers) == []  # detached after training


def test_lora_reference_logprobs_are_unchanged_by_an_attached_pps(tmp_path, tiny_model_dir):
    config = load_causal_lm(str(tiny_model_dir), device="cpu")[0].config
    write_vectors(tmp_path / "caps.safetensors", config, scale=5.0)
    path, recipe = make_recipe(tmp_path, tiny_model_dir, "model.lora.enabled=true",
                               "hooks=[{hook: pps, kwargs: {vectors: caps.safetensors, layer: 0, coef: 5.0}}]")
    trainer = Trainer(recipe, path)
    trainer.step = 1
    examples = trainer.train_data[:2]
    from rlsp.data.prompts import chat_messages
    from rlsp.generation import SamplingParams
    from rlsp.training.rollout import generate_step

    generated = generate_step(trainer.backend, examples, [chat_messages(e, recipe.data) for e in examples], 1,
                              SamplingParams(temperature=1.0, max_new_tokens=6), 8)
    models, hooks = trainer.models, trainer.hooks

    def reference_logprobs():
        with (torch.no_grad(), models.reference.model() as reference,
              hooks.around("forward", role="reference", grad=False)):
            return completion_logprobs(reference, generated.seqs, 1.0)[0]

    def policy_logprobs():
        with torch.no_grad(), hooks.around("forward", role="policy", grad=False):
            return completion_logprobs(models.policy, generated.seqs, 1.0)[0]

    plain_reference, plain_policy = reference_logprobs(), policy_logprobs()
    hooks.fire("train_start")  # PPS attaches to the PEFT policy, whose reference is the same module
    torch.testing.assert_close(reference_logprobs(), plain_reference)
    assert not torch.allclose(policy_logprobs(), plain_policy)
    hooks.end()
    torch.testing.assert_close(policy_logprobs(), plain_policy)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_with_pps_ip_and_diagnostics(tmp_path, tiny_model_dir, lora):
    config = load_causal_lm(str(tiny_model_dir), device="cpu")[0].config
    vectors = write_vectors(tmp_path / "caps.safetensors", config)
    hooks = (f"hooks=[{{hook: pps, kwargs: {{vectors: {vectors}, layer: 0}}}}, "
             f"{{hook: inoculation_prompt, kwargs: {{system_prompt: '{IP_PROMPT}'}}}}, "
             f"{{hook: gradient_diagnostics, kwargs: {{vectors: {vectors}, layer: 0, every: 2}}}}]")
    lora_settings = ["model.lora.enabled=true", "model.lora.r=2", "sft.learning_rate=1e-2"] if lora else []
    recipe, out, _ = tiny_recipe(tmp_path, tiny_model_dir, "sft.max_steps=4", hooks, *lora_settings)
    from rlsp.sft.warm_start import build_trainer

    trainer, _ = build_trainer(recipe, None, out)
    first = trainer.train_dataset[0]
    assert IP_PROMPT in trainer.processing_class.decode(first["input_ids"])  # training inputs carry the prompt
    result = run_sft(recipe, None, out)
    assert result.steps == 4
    diagnostics = [json.loads(x) for x in (out / "diagnostics.jsonl").read_text().splitlines()]
    assert [d["optimizer_step"] for d in diagnostics] == [1, 3]  # every 2 optimizer steps
    assert all(d["grad_cosine_without_defences"] < 0.999999 for d in diagnostics)  # PPS changes the gradient
    log = json.loads((out / "sft_log.json").read_text())
    assert sum("diagnostics/grad_projection" in entry for entry in log) == 2
    # the saved model carries no trace of the steering: the same weights as the base model, no hooks
    saved, _ = load_causal_lm(str(out), device="cpu")
    base, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    assert saved.state_dict().keys() == base.state_dict().keys()
    assert not torch.equal(saved.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    assert rlsp_hooks(saved.model.layers) == []


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{hook: ppss, kwargs: {}}", r"unknown hook 'ppss'\. Did you mean 'pps'\?"),
        ("{hook: pps, kwargs: {vectors: other.safetensors, layer: 0}}",
         "the vectors have size 48 but the model's hidden size is 32"),
        ("{hook: pps, kwargs: {vectors: deeper.safetensors, layer: 0}}",
         "extracted from another model .*num_hidden_layers 3 vs 2"),
        ("{hook: pps, kwargs: {vectors: caps.safetensors, layer: 2}}",
         "kwargs.layer: layer 2 is out of range; .* 0..1"),
        ("{hook: pps, kwargs: {vectors: absent.safetensors, layer: 0}}",
         "kwargs.vectors: file 'absent.safetensors' not found"),
        ("{hook: pps, kwargs: {vectors: my_rewards.py, layer: 0}}", "is not a steering vector file"),
        ("{hook: my_rewards.py:chars}", "not a subclass of rlsp.hooks.Hook"),
    ],
)
def test_bad_hook_inputs_fail_before_training(tmp_path, tiny_model_dir, entry, message, monkeypatch):
    from transformers import LlamaConfig

    config = load_causal_lm(str(tiny_model_dir), device="cpu")[0].config
    write_vectors(tmp_path / "caps.safetensors", config)
    write_vectors(tmp_path / "other.safetensors",
                  LlamaConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, vocab_size=config.vocab_size))
    write_vectors(tmp_path / "deeper.safetensors",
                  LlamaConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, vocab_size=config.vocab_size))
    import rlsp.training.ppo_trainer as trainer_module

    monkeypatch.setattr(trainer_module, "build_models", lambda *a, **k: pytest.fail("the model was loaded"))
    path, recipe = make_recipe(tmp_path, tiny_model_dir, f"hooks=[{entry}]")
    with pytest.raises(ConfigError, match=message):
        Trainer(recipe, path)
