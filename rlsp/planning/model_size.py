"""The sizes a memory plan needs, read from a model's config alone (no weights).

The parameter count comes from building the model on PyTorch's meta device, so biases, tied
embeddings and any architecture transformers knows are counted exactly. The configs of the
paper's models are kept here too, so a plan for them works without network access.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# From the models' public config.json files (the fields a plan reads).
KNOWN_CONFIGS = {
    "meta-llama/Llama-3.1-8B-Instruct": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
        "max_position_embeddings": 131072,
    },
    "Qwen/Qwen2.5-32B-Instruct": {
        "model_type": "qwen2", "hidden_size": 5120, "intermediate_size": 27648, "num_hidden_layers": 64,
        "num_attention_heads": 40, "num_key_value_heads": 8, "vocab_size": 152064, "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
    },
    "Qwen/Qwen2.5-1.5B-Instruct": {
        "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
    },
}


@dataclass(frozen=True)
class ModelSize:
    name: str
    params: int  # every parameter of the causal LM (tied ones once)
    lm_head_params: int  # 0 when tied to the embeddings
    largest_layer_params: int  # the biggest single module (what ZeRO-3 gathers at once)
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int  # key/value heads x head size
    vocab: int

    def critic_params(self, heads: int) -> int:
        """Backbone plus ``heads`` value heads, each a weight row and a bias (the LM head is not copied)."""
        return self.params - self.lm_head_params + heads * (self.hidden + 1)

    def kv_bytes_per_token(self, bytes_per_value: int) -> int:
        return 2 * self.layers * self.kv_dim * bytes_per_value


def model_size(name_or_path: str) -> ModelSize:
    config = load_config(name_or_path)
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    unique = {id(p): p.numel() for p in model.parameters()}
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return ModelSize(name_or_path, sum(unique.values()), 0 if tied or head is None else head.weight.numel(),
                     largest, config.num_hidden_layers, config.hidden_size,
                     getattr(config, "intermediate_size", 4 * config.hidden_size), kv_heads * head_dim,
                     config.vocab_size)


def load_config(name_or_path: str):
    """The model's transformers config: a known paper model, or a folder, alias or cached hub id."""
    from transformers import AutoConfig

    if name_or_path in KNOWN_CONFIGS:
        known = dict(KNOWN_CONFIGS[name_or_path])
        return AutoConfig.for_model(known.pop("model_type"), **known)
    from rlsp.modeling.causal_lm import model_config

    return model_config(name_or_path)
