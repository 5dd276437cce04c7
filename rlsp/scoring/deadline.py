"""A time limit on every reward function and verifier call, and a reward that ends the process
ends the run with its name.

User code may never return (an endless loop, a judge waiting on a server) or call ``sys.exit``.
Each call therefore runs in a daemon thread that the trainer waits on for at most the reward's
``timeout_s``. Python cannot stop a thread, so a call that overruns is left behind and the run
stops with a ``RewardAborted`` naming the function: the process then exits, and the daemon thread
with it. (Per-sample limits that must *not* end the run, such as the math verifier's on sympy,
kill a worker process instead: ``rlsp_verifiers.time_limit``.)

A thread rather than a worker process keeps what rewards rely on: functions loaded from a file
by path, a judge model already on the GPU, and no pickling of arguments or results.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rlsp.errors import RewardError


class RewardAborted(RewardError):
    """A reward or verifier ran past its time limit or tried to end the process; the run stops
    whatever its ``on_error`` says, since a fallback would hide a run that stopped scoring."""


def call_with_deadline(fn: Callable[..., Any], args: tuple, kwargs: dict, timeout_s: float, who: str) -> Any:
    """``fn(*args, **kwargs)``, or ``RewardAborted`` after ``timeout_s`` seconds or on ``sys.exit``.

    Exceptions ``fn`` raises reach the caller unchanged (``who``'s ``on_error`` decides about them).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- handed to the caller as it is
            outcome["error"] = e
        except BaseException as e:  # noqa: BLE001 -- SystemExit and the like, raised by user code
            outcome["exit"] = e

    thread = threading.Thread(target=target, name=f"rlsp reward {who}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise RewardAborted(f"{who} did not return within {timeout_s:g} s (its timeout_s); the run stops here. "
                            "Make it faster or raise timeout_s in its recipe entry.")
    if "exit" in outcome:
        e = outcome["exit"]
        detail = f"sys.exit({e.code!r})" if isinstance(e, SystemExit) else type(e).__name__
        raise RewardAborted(f"{who} tried to end the process ({detail}); the run stops here. A reward function "
                            "must return its scores (None for 'not applicable') or raise an exception.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
