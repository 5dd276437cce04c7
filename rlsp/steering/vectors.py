"""A file of steering vectors: one direction per decoder layer, with what made it.

Saved as safetensors: the tensor ``vectors`` (n_layers, hidden_size), float32, row ``l`` being a
direction in the residual stream *after* decoder layer ``l`` (``hidden_states[l + 1]`` of
transformers); the metadata (strings, as safetensors requires) say which model it came from,
its shape, each row's norm, the prompts used and the rlsp version. ``check_fits`` refuses a file
made on another architecture before any training starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rlsp.errors import ConfigError


@dataclass
class SteeringVectors:
    vectors: torch.Tensor  # (n_layers, hidden_size) float32
    model: str  # model.name_or_path it was extracted from
    architecture: dict  # model_type, hidden_size, num_hidden_layers, vocab_size
    info: dict = field(default_factory=dict)  # how it was made: trait, prompts, counts, ...

    @property
    def n_layers(self) -> int:
        return self.vectors.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.vectors.shape[1]

    def unit(self, layer: int) -> torch.Tensor:
        """Row ``layer`` scaled to norm 1."""
        v = self.vectors[layer]
        return v / v.norm().clamp(min=1e-12)

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        from rlsp import __version__

        metadata = {
            "model": self.model,
            "architecture": json.dumps(self.architecture),
            "hidden_size": str(self.hidden_size),
            "layers": str(self.n_layers),
            "norms": json.dumps([round(float(n), 6) for n in self.vectors.norm(dim=-1)]),
            "info": json.dumps(self.info),
            "rlsp_version": __version__,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors.float().contiguous()}, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, field_name: str = "vectors") -> SteeringVectors:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"{field_name}: steering vector file {str(path)!r} not found; make one with rlsp steer extract."
            )
        try:
            path.open("rb").close()  # safetensors reports a file it may not read as "not found"
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                vectors = f.get_tensor("vectors")
            architecture, info = json.loads(metadata["architecture"]), json.loads(metadata.get("info", "{}"))
        except OSError as e:
            raise ConfigError(f"{field_name}: {path} cannot be read ({e.strerror}).") from None
        except Exception as e:  # noqa: BLE001 -- safetensors and json raise several types for a foreign file
            raise ConfigError(f"{field_name}: {path} is not a steering vector file made by rlsp steer extract "
                              f"({type(e).__name__}: {e}).") from None
        if vectors.dim() != 2 or not vectors.numel():
            raise ConfigError(f"{field_name}: {path} has no rlsp steering vectors (made by rlsp steer extract).")
        # NaN steers every activation to NaN; all zeros steers nothing (identical contrasting prompts)
        broken = (~torch.isfinite(vectors)).any(dim=-1).nonzero().flatten().tolist()
        if broken:
            raise ConfigError(f"{field_name}: {path} holds NaN or infinite values (in the vectors of layers "
                              f"{broken[:8]}); extract the vectors again.")
        if not vectors.any():
            raise ConfigError(f"{field_name}: {path} holds only zeros, so steering or projecting on it does nothing; "
                              f"extract it again with prompts that differ in the trait.")
        return cls(vectors.float(), metadata.get("model", "?"), architecture, info)

    def check_fits(self, config, field_name: str = "vectors") -> None:
        """Refuse vectors extracted from a model of another shape than ``config`` (a transformers config)."""
        theirs = architecture_of(config)
        if theirs["hidden_size"] != self.hidden_size:
            raise ConfigError(
                f"{field_name}: the vectors have size {self.hidden_size} but the model's hidden size is "
                f"{theirs['hidden_size']}; they were extracted from {self.model!r}. Extract vectors for this model."
            )
        different = {k: (self.architecture.get(k), v) for k, v in theirs.items() if self.architecture.get(k) != v}
        if different:
            detail = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in different.items())
            raise ConfigError(
                f"{field_name}: the vectors were extracted from another model ({self.model!r}: {detail}). "
                f"Extract vectors for this model with rlsp steer extract."
            )

    def check_layer(self, layer: int, field_name: str = "layer") -> None:
        if not 0 <= layer < self.n_layers:
            raise ConfigError(
                f"{field_name}: layer {layer} is out of range; the model has decoder layers 0..{self.n_layers - 1}."
            )
        if not self.vectors[layer].any():
            raise ConfigError(f"{field_name}: the vector of layer {layer} is all zeros, so steering or projecting on "
                              f"it does nothing; choose another layer.")


def architecture_of(config) -> dict:
    """What two models must share for a steering vector to carry over (weights may differ)."""
    return {
        "model_type": getattr(config, "model_type", None),
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "vocab_size": getattr(config, "vocab_size", None),
    }
