"""What a run leaves to read: TensorBoard scalars and one JSON line per rollout sample.

On resume both are cut back to the checkpoint's step, so a crash after a checkpoint leaves no
duplicate or orphaned entries: TensorBoard through ``purge_step``, ``rollouts.jsonl`` by
rewriting it without the lines of later steps.
"""

from __future__ import annotations

import json
import math
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
        if not self.rollouts_path.exists():
            return
        kept = [line for line in self.rollouts_path.read_text().splitlines() if json.loads(line)["step"] <= step]
        self.rollouts_path.write_text("".join(line + "\n" for line in kept))
