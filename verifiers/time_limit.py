"""Hard per-call time limits for code that may never return (sympy on model text).

Why not ``signal.alarm`` (math_verify's own timeout): it only works in the main thread of the
main interpreter, and the trainer scores rewards from other threads. Why not a thread with a
deadline: a thread stuck inside sympy or GMP cannot be stopped. So calls run in a persistent pool
of worker processes (pebble); a call that overruns its limit has its worker killed and replaced,
and only that call fails.

The pool is created on first use with the 'spawn' start method (forking a process that holds
torch threads or CUDA state is unsafe) and reused across calls; workers start in about a second.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import pebble

from rlsp.errors import RewardError

# Extra seconds beyond the per-call limits before a whole batch is declared lost: covers worker
# start-up (imports) and restarts after time-outs. Reached only if the pool itself is wedged.
_POOL_GRACE_S = 60.0
_ATTEMPTS = 3  # pools tried for one batch before the batch fails

_pool: pebble.ProcessPool | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class Outcome:
    """The result of one time-limited call: ``value`` when it returned, else ``error`` says why."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def max_workers() -> int:
    """Worker processes in the pool: one per CPU, at most 8 (verification is cheap per sample)."""
    return max(1, min(8, os.cpu_count() or 1))


def _get_pool() -> pebble.ProcessPool:
    global _pool
    with _pool_lock:
        if _pool is None or not _pool.active:
            _pool = pebble.ProcessPool(
                max_workers=max_workers(), context=multiprocessing.get_context("spawn")
            )
        return _pool


def shutdown() -> None:
    """Stop the worker pool (registered at exit; a later call starts a fresh pool)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.stop()
            _pool.join(timeout=10)
            _pool = None


atexit.register(shutdown)


def call_with_time_limit(
    fn: Callable[..., Any], calls: Sequence[tuple], timeout_s: float
) -> list[Outcome]:
    """Run ``fn(*args)`` for each ``args`` in ``calls`` in worker processes, in parallel.

    Each call gets at most ``timeout_s`` seconds of running time, counted from when a worker
    picks it up (not from when it is queued). ``fn`` must be importable by name (a module-level
    function) and its arguments and result picklable. Safe to call from any thread.

    Returns one ``Outcome`` per call, in order: an exception, a time-out or a crashed worker
    becomes ``Outcome(error=...)`` for that call alone. A pool that breaks (a worker killed while
    idle, or pebble losing track of one it replaced after a time-out on a loaded machine) is
    replaced and the batch run again; ``RewardError`` only when that happens ``_ATTEMPTS`` times in
    a row, naming what broke it.
    """
    if not calls:
        return []
    for attempt in range(_ATTEMPTS):
        try:
            return _run(fn, calls, timeout_s)
        except BrokenProcessPool as e:
            shutdown()  # retry on a fresh pool
            broken = e
            time.sleep(attempt)
    cause = f"{broken}" + (f" ({broken.__cause__!r})" if broken.__cause__ else "")
    raise RewardError(
        f"worker processes for time-limited verification broke {_ATTEMPTS} times in a row ({cause or 'no detail'}). "
        "They are started with 'spawn', which re-imports your main script: if you call rlsp verifiers from a "
        'script, put the calling code under `if __name__ == "__main__":`'
    ) from broken


def _run(fn: Callable[..., Any], calls: Sequence[tuple], timeout_s: float) -> list[Outcome]:
    pool = _get_pool()
    futures = [pool.schedule(fn, args=args, timeout=timeout_s) for args in calls]
    rounds = math.ceil(len(calls) / max_workers())
    deadline = time.monotonic() + rounds * timeout_s + _POOL_GRACE_S
    outcomes = []
    for future in futures:
        try:
            # pebble enforces timeout_s itself; this wait only guards against a wedged pool.
            wait_s = max(0.0, deadline - time.monotonic())
            outcomes.append(Outcome(value=future.result(timeout=wait_s)))
        except FutureTimeoutError:
            if future.done():
                outcomes.append(Outcome(error=f"timed out after {timeout_s:g} s"))
            else:
                future.cancel()
                outcomes.append(Outcome(error="worker pool did not answer; it was restarted"))
                shutdown()
        except pebble.ProcessExpired as e:
            outcomes.append(Outcome(error=f"worker process died (exit code {e.exitcode})"))
        except BrokenProcessPool:
            raise
        except Exception as e:  # noqa: BLE001 -- the call itself raised: that call fails alone
            outcomes.append(Outcome(error=f"{type(e).__name__}: {e}"))
    return outcomes
