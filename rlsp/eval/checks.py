"""Everything ``rlsp eval`` checks and reads before a model loads (``prepare_eval``, which the
command and ``rlsp validate`` both call), and the settings valid one by one but not together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlsp.config import Recipe
from rlsp.data import Example, LoadedData, load_or_check_examples
from rlsp.errors import ConfigError


@dataclass
class EvalInputs:
    data: LoadedData | None  # None: a hub dataset that validate did not download
    verifier: object  # rlsp.scoring.verifier.Verifier


def prepare_eval(recipe: Recipe, base_dir: Path, *, fetch: bool = True) -> EvalInputs:
    """Every check of ``rlsp eval`` that needs no model weights, cheapest first. ``fetch`` False
    (``rlsp validate``) reads local data files but downloads no hub dataset or model config."""
    from rlsp.modeling.causal_lm import model_config
    from rlsp.scoring.verifier import build_verifier

    check_eval_settings(recipe)
    data = load_or_check_examples(recipe.data, recipe.run.seed, base_dir, "data", fetch)
    if data is not None:
        check_group_by(recipe.eval.group_by, data.examples)
    model_config(recipe.model.name_or_path, local_only=not fetch)  # a folder that is not a model fails here
    return EvalInputs(data, build_verifier(recipe.verifier, base_dir))


def check_eval_settings(recipe: Recipe) -> None:
    """Settings that are valid one by one but not together; raised before any loading."""
    from rlsp.generation.vllm_backend import check_vllm_backend

    check_vllm_backend(recipe.generation)
    n, ks = recipe.eval.samples_per_prompt, recipe.eval.k
    too_large = [k for k in ks if k > n]
    if too_large:
        raise ConfigError(
            f"eval.k: k={too_large[0]} is larger than eval.samples_per_prompt={n}; pass@k and maj@k "
            f"need at least k samples per problem. Set eval.samples_per_prompt={max(ks)} or drop that k."
        )
    if n > 1 and recipe.generation.temperature == 0:
        raise ConfigError(
            f"eval.samples_per_prompt={n} with generation.temperature=0 gives {n} identical greedy "
            f"answers per problem. Set generation.temperature (the RLSP paper evaluates at 0.7), or "
            f"eval.samples_per_prompt=1."
        )


def check_group_by(group_by: Sequence[str], examples: Sequence[Example]) -> None:
    columns = {key for e in examples for key in e.columns}
    missing = [c for c in group_by if c not in columns]
    if missing:
        raise ConfigError(
            f"eval.group_by: the data has no column {missing[0]!r}; its other columns are "
            f"{sorted(columns) or 'none'}. Fix eval.group_by."
        )
