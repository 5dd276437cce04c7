"""Prompt datasets and the built-in arithmetic task."""

from rlsp.data.sources import (
    Example,
    LoadedData,
    check_source,
    load_examples,
    load_or_check_examples,
)

__all__ = ["Example", "LoadedData", "check_source", "load_examples", "load_or_check_examples"]
