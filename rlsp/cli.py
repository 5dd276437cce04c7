"""The ``rlsp`` command line (also ``python -m rlsp`` and ``accelerate launch -m rlsp``).

Problems with the user's input are ``RlspError``s: printed as one short message without a
traceback, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rlsp.errors import RlspError

# Sub-command name -> module in rlsp.commands (each has HELP, add_arguments, run).
COMMANDS = {
    "validate": "validate",
    "eval": "eval",
    "sft": "sft",
    "train": "train",
    "steer": "steer",
    "inspect": "inspect",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlsp", description="RL post-training for reasoning (RLSP).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"rlsp.commands.{module_name}")
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"rlsp.commands.{COMMANDS[args.command]}")
    try:
        return module.run(args)
    except RlspError as e:
        print(f"rlsp {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
