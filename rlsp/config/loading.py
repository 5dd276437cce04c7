"""Reading a recipe YAML file into a frozen ``Recipe``, with overrides and readable errors.

Every problem becomes a ``ConfigError`` naming the file and the field (``generation.top_p``),
saying what was wrong and how to fix it. Nested sections are built bottom-up so each is
validated strictly and its errors carry their full path.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rlsp.errors import ConfigError, did_you_mean


class RecipeLoader(yaml.SafeLoader):
    """YAML 1.1 reads ``2e-5`` (no dot) as a string; researchers write learning rates that way."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=RecipeLoader)


def read_yaml_mapping(path: Path) -> dict:
    """Parse ``path`` as a YAML mapping, or raise a ConfigError that points at the problem."""
    if path.is_dir():
        yamls = sorted(p.name for p in path.glob("*.yaml"))[:5]
        raise ConfigError(f"recipe file {str(path)!r} is a folder; give a recipe's YAML file"
                          + (f" (it holds {', '.join(yamls)})." if yamls else "; recipes ship in recipes/."))
    if not path.is_file():
        raise ConfigError(f"recipe file {str(path)!r} not found. Check the path; recipes ship in recipes/.")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not a text file (byte {e.start} is not UTF-8); give the recipe's YAML file."
        ) from None
    except OSError as e:
        raise ConfigError(f"recipe file {str(path)!r} cannot be read ({e.strerror}); check its permissions.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the recipe must be a mapping of sections (model:, data:, ...), not {type(data).__name__}."
        )
    return data


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a copy of ``data``."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} is not of the form section.key=value, e.g. generation.temperature=0.7."
            )
        try:
            value = parse_yaml(raw) if raw else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value {raw!r} is not valid YAML; quote it.") from None
        node: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[_list_index(node, part, item)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {item!r}: {part!r} is not a section.")
        if isinstance(node, list):
            node[_list_index(node, parts[-1], item)] = value
        else:
            node[parts[-1]] = value
    return data


def _list_index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {item!r}: {part!r} is not an index of a list of {len(node)} entries.")
    return int(part)


# Keys that recipes used to have, and what replaced them.
MOVED_KEYS = {
    "model.dtype": "replaced by model.precision (auto, fp32, bf16, fp16, bf16-pure); 'bfloat16' weights "
    "are now 'bf16-pure', 'float32' is 'fp32'.",
    "train.mixed_precision": "replaced by model.precision (auto, fp32, bf16, fp16, bf16-pure), which "
    "eval and sft read too; 'auto' picks bf16 only where the device runs it natively.",
    "train.grpo_scale_by_std": "replaced by train.advantage_estimator: dr_grpo (GRPO without the division by "
    "the group's std, with Dr. GRPO's constant loss normaliser); grpo always divides.",
}


def build_section(cls: type, data: Any, path: str, source: str) -> Any:
    """Build the section ``cls`` from a mapping, validating it; ``path`` is the dotted location."""
    where = f"{source}: {path}" if path else source
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(_field_names(cls))}; got {data!r}.")
    fields = cls.__pydantic_fields__
    kwargs = {}
    for key, value in data.items():
        if _join(path, str(key)) in MOVED_KEYS:
            raise ConfigError(f"{source}: {_join(path, str(key))}: {MOVED_KEYS[_join(path, str(key))]}")
        if key not in fields:
            raise ConfigError(
                f"{source}: {_join(path, str(key))}: unknown key.{did_you_mean(str(key), list(fields))} "
                f"Valid keys{' of ' + path if path else ''}: {', '.join(fields)}."
            )
        kwargs[key] = _build_value(fields[key].annotation, value, _join(path, key), source)
    try:
        return cls(**kwargs)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, cls, path, source)) from None


def _build_value(annotation: Any, value: Any, path: str, source: str) -> Any:
    if dataclasses.is_dataclass(annotation):
        return build_section(annotation, value, path, source)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and value is not None:  # Section | None
        sections = [a for a in args if dataclasses.is_dataclass(a)]
        if sections:
            return build_section(sections[0], value, path, source)
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path}: expected a list of mappings; got {value!r}.")
        return [build_section(args[0], v, f"{path}.{i}", source) for i, v in enumerate(value)]
    return value


def _format_validation_error(error: ValidationError, cls: type, path: str, source: str) -> str:
    lines = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"]]
        field = cls.__pydantic_fields__.get(loc[0]) if loc else None
        help_text = f" ({field.description})" if field is not None and field.description else ""
        if err["type"] == "missing":
            lines.append(f"{source}: {_join(path, '.'.join(loc))}: required field is missing.{help_text}")
            continue
        got = f"; got {err['input']!r}" if "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"{source}: {_join(path, '.'.join(loc))}: {err['msg']}{got}.{help_text}")
    return "\n".join(lines)


def _field_names(cls: type) -> list[str]:
    return list(cls.__pydantic_fields__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
