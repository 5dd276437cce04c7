"""What a vLLM recipe is refused for before anything loads, and where generation.backend=auto
picks vLLM (needs no vLLM installed)."""

from __future__ import annotations

import pytest

from rlsp.config.schema import GenerationConfig
from rlsp.errors import ConfigError
from rlsp.generation import vllm_backend


def test_missing_vllm_names_the_install_commands(monkeypatch):
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'rlsp\[vllm\]'.*make vllm-env"):
        vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm"))
    vllm_backend.check_vllm_backend(GenerationConfig(backend="hf"))  # rlsp's own loop needs nothing
    vllm_backend.check_vllm_backend(GenerationConfig(backend="auto"))  # nor auto, which falls back to it


def test_several_processes_are_refused(monkeypatch):
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="single-process launches only"):
        vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm"))


@pytest.mark.skipif(vllm_backend.vllm_available(), reason="vLLM is installed in this environment")
def test_validate_refuses_a_vllm_recipe_here(tmp_path, tiny_model_dir):
    from test_training import make_recipe

    from rlsp.cli import main

    path, _ = make_recipe(tmp_path, tiny_model_dir)
    assert main(["validate", str(path), "generation.backend=vllm"]) == 2


def test_auto_takes_vllm_only_where_it_runs_unattended(monkeypatch, tmp_path, tiny_model_dir):
    """Resolved once from the recipe and the launch, before any model loads."""
    from test_training import make_recipe

    from rlsp.generation import resolve_backend

    recipe = lambda *overrides: make_recipe(tmp_path, tiny_model_dir, *overrides)[1]
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    assert resolve_backend(recipe()) == "hf"  # not installed (this environment)
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    assert resolve_backend(recipe()) == "vllm"  # a CPU, one process, a model folder
    assert resolve_backend(recipe(), hooks=True) == "hf"  # hooks act on the torch module's forward
    assert resolve_backend(recipe("generation.backend=hf")) == "hf"
    assert resolve_backend(recipe("generation.backend=vllm"), hooks=True) == "vllm"  # asked for: preflight checks
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_backend(recipe()) == "hf"
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # ZeRO shards: the engine has no whole weights
    assert resolve_backend(recipe()) == "hf"
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    assert resolve_backend(recipe("model.name_or_path=some-org/some-model")) == "hf"  # no config.json to read


def test_vllm_with_steering_while_sampling_is_refused(tmp_path, tiny_model_dir, monkeypatch):
    from test_training import make_recipe

    from rlsp.training.preflight import check_training_recipe

    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    _, recipe = make_recipe(tmp_path, tiny_model_dir, "generation.backend=vllm",
                            "hooks=[{hook: pps, kwargs: {vectors: v.pt, layer: 1, during_generation: true}}]")
    with pytest.raises(ConfigError, match="during_generation=true"):
        check_training_recipe(recipe)
