"""The ``rlsp`` command line (also ``python -m rlsp`` and ``accelerate launch -m rlsp``).

Problems with the user's input are ``RlspError``s: printed as one short message without a
traceback, exit status 2. ``--debug`` (anywhere on the line) or ``RLSP_DEBUG=1`` shows the
traceback instead. Ctrl-C prints what the command leaves behind and how to go on (exit 130);
SIGTERM (``kill``, a scheduler's preemption) does the same (exit 143). Under a launcher only the
main process prints. Anything else is a bug in rlsp and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import signal
import sys
import threading

from rlsp.errors import RlspError
from rlsp.launch_env import launched_rank

# Sub-commands, each a module of the same name in rlsp.commands (HELP, add_arguments, run;
# optionally interrupted(args) -> str, what Ctrl-C leaves behind).
COMMANDS = ("validate", "eval", "sft", "train", "steer", "inspect", "ablate", "plan")
_OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)*=")


class OneLineParser(argparse.ArgumentParser):
    """argparse with rlsp's error style: one line and the way to the help, not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rlsp", description="RL post-training for reasoning (RLSP).",
                           epilog="--debug anywhere (or RLSP_DEBUG=1) shows tracebacks for errors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"rlsp.commands.{name}")
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse, taking ``section.key=value`` overrides wherever they stand: argparse reads the
    positionals in one run, so ``rlsp train r.yaml --resume x.y=1`` would leave ``x.y=1`` over."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if _OVERRIDE.match(a)]
    unknown = [a for a in extra if not _OVERRIDE.match(a)]
    target = "overrides" if hasattr(args, "overrides") else "args" if hasattr(args, "args") else None
    if unknown or (overrides and target is None):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if overrides:
        setattr(args, target, list(getattr(args, target) or []) + overrides)
    return args


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program stands so that it unwinds as it does for Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RLSP_DEBUG", "") not in ("", "0")
    args = parse([a for a in argv if a != "--debug"])
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return _run(args, debug)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, debug: bool) -> int:
    module = importlib.import_module(f"rlsp.commands.{args.command}")
    if getattr(args, "recipe", "") is None:
        print(f"rlsp {args.command}: error: give a recipe file, e.g. rlsp {args.command} recipes/demo_rlsp.yaml "
              f"[section.key=value ...]; the shipped recipes are in recipes/.", file=sys.stderr)
        return 2
    try:
        code = module.run(args)
        if leave_process_group():
            exit_at_once(code)
        return code
    except RlspError as e:
        if debug:
            raise
        if launched_rank() == 0:  # under a launcher every rank has the same complaint
            print(f"rlsp {args.command}: error: {with_recipe_file(e, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        stop_worker_pools()
        if debug:
            raise
        how, code = ("terminated (SIGTERM)", 143) if isinstance(e, Terminated) else ("interrupted (Ctrl-C)", 130)
        if launched_rank() == 0:
            left = getattr(module, "interrupted", None)
            print(f"\nrlsp {args.command}: {how}. {left(args) if left else ''}".rstrip(), file=sys.stderr)
        return code


def stop_worker_pools() -> None:
    """Stop the math verifier's worker processes while this process still runs its threads: left
    to the exit, a worker being started at that moment lost its parent mid-handshake and printed
    a traceback of its own under the clean interrupt message."""
    time_limit = sys.modules.get("rlsp_verifiers.time_limit")
    if time_limit is not None:
        time_limit.shutdown()


def leave_process_group() -> bool:
    """Tear down a launch's process group once the command's work is done; whether there was one.
    Every collective of the command is behind each process by now, so no barrier is needed."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
        return True
    return False


def exit_at_once(code: int) -> None:
    """End a launched process whose work is done and saved without the interpreter's teardown: on
    a CPU under DeepSpeed, native threads of the communication libraries were sometimes destroyed
    while still joinable ("terminate called without an active exception", SIGABRT) after every
    file was written, and the launcher reported the finished run as failed (1 run in 5 here)."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def with_recipe_file(error: RlspError, args) -> str:
    """Checks after loading name a recipe field (``train.minibatch_size: ...``); put the recipe's
    file in front, as the loader's own messages have it."""
    message, recipe = str(error), getattr(args, "recipe", None)
    if not recipe or message.startswith(str(recipe)):
        return message
    from rlsp.config import Recipe

    sections = {f.name for f in dataclasses.fields(Recipe)}
    first = re.match(r"^([a-z_]+)[.:\s]", message)
    return f"{recipe}: {message}" if first and first.group(1) in sections else message


if __name__ == "__main__":
    sys.exit(main())
