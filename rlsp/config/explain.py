"""Showing a recipe back to the user: resolved values, and every field with its help text."""

from __future__ import annotations

import dataclasses


def recipe_as_dict(recipe) -> dict:
    return dataclasses.asdict(recipe)


def explain(cls: type, prefix: str = "") -> str:
    """One line per field: dotted name, type, default and help text, sections expanded."""
    lines = []
    for name, field in cls.__pydantic_fields__.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        if dataclasses.is_dataclass(annotation):
            lines.append(f"{path}: {field.description}")
            lines.append(explain(annotation, path + "."))
            continue
        default = field.default_factory() if field.default_factory else field.default
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        lines.append(f"  {path} ({type_name}, default {default!r}): {field.description}")
    return "\n".join(lines)
