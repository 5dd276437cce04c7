"""One module per ``rlsp`` sub-command, each with ``HELP``, ``add_arguments`` and ``run``."""

from __future__ import annotations

import argparse


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    # Optional for argparse, so a missing recipe gets rlsp's own message (cli.main), not
    # "the following arguments are required: recipe, section.key=value".
    parser.add_argument("recipe", nargs="?", help="Path to a recipe YAML file (see recipes/).")
    parser.add_argument(
        "overrides", nargs="*", metavar="section.key=value",
        help="Override recipe values, e.g. generation.temperature=0.7 data.limit=50.",
    )
