"""What a vLLM recipe is refused for before anything loads (needs no vLLM installed)."""

from __future__ import annotations

import pytest

from rlsp.config.schema import GenerationConfig
from rlsp.errors import ConfigError
from rlsp.generation import vllm_backend


def test_missing_vllm_names_the_install_commands(monkeypatch):
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'rlsp\[vllm\]'.*make vllm-env"):
        vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm"))
    vllm_backend.check_vllm_backend(GenerationConfig(backend="hf"))  # the default backend needs nothing


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
