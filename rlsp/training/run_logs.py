"""What a run leaves to read: TensorBoard scalars and one JSON line per rollout sample.

On resume both are cut back to the checkpoint's step, so a crash after a checkpoint leaves no
duplicate or orphaned entries: TensorBoard through ``purge_step``, ``rollouts.jsonl`` by
rewriting it without the lines of later steps.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class RunLogs:
    """Writes only where ``enabled`` (the main process); elsewhere every call does nothing."""

    def __init__(self, run_dir: Path, resume_step: int | None, enabled: bool = True):
        self.enabled = enabled
        self.rollouts_path = run_dir / "rollouts.jsonl"
        if not enabled:
            return
        if resume_step is not None:
            self._truncate_rollouts(resume_step)
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def rollouts(self, records: list[dict]) -> None:
        if not self.enabled:
            return
        with self.rollouts_path.open("a") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.enabled:
            self.writer.close()

    def _truncate_rollouts(self, step: int) -> None:
        """Keep the lines of steps up to ``step``. A line cut short by a crash is dropped, and a log
        that lacks steps is reported: the run goes on either way (the checkpoint is what resumes)."""
        path = self.rollouts_path
        if not path.exists():
            if step > 0:
                warnings.warn(f"--resume: {path} is missing, so the samples of steps 1-{step} are not there; the "
                              f"steps from {step + 1} on go into a new file.", stacklevel=3)
            return
        kept, unreadable, steps = [], [], set()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            try:
                record_step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                unreadable.append(number)
                continue
            if isinstance(record_step, int) and record_step <= step:
                kept.append(line)
                steps.add(record_step)
        if unreadable:
            warnings.warn(f"--resume: {path}: dropped {len(unreadable)} unreadable line(s) (line "
                          f"{', '.join(map(str, unreadable[:5]))}{'...' if len(unreadable) > 5 else ''}), e.g. a "
                          f"write cut short when the run stopped.", stacklevel=3)
        missing = sorted(set(range(1, step + 1)) - steps)
        if missing:
            warnings.warn(f"--resume: {path} has no samples of step(s) {_ranges(missing)}; they are not "
                          f"logged again.", stacklevel=3)
        tmp = path.with_name(path.name + ".tmp")  # renamed over the log: a crash now loses nothing
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def _ranges(numbers: list[int]) -> str:
    """'1-3, 7' for [1, 2, 3, 7]."""
    parts, start = [], numbers[0]
    for prev, cur in zip(numbers, [*numbers[1:], None], strict=True):
        if cur is None or cur != prev + 1:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
            start = cur
    return ", ".join(parts)
