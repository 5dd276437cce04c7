"""One module per ``rlsp`` sub-command, each with ``HELP``, ``add_arguments`` and ``run``."""

from __future__ import annotations

import argparse


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="Path to a recipe YAML file (see recipes/).")
    parser.add_argument(
        "overrides", nargs="*", metavar="section.key=value",
        help="Override recipe values, e.g. generation.temperature=0.7 data.limit=50.",
    )
