"""``model.precision``: which dtype the matmuls run in, chosen from what the device really does.

One setting for ``rlsp eval``, ``rlsp sft`` and ``rlsp train``:

- ``auto`` (default): bf16 where the device runs it natively, fp32 otherwise. CUDA: the run's
  own GPU has compute capability 8.0 or more (emulated bf16 on older cards does not count). A CPU
  must pass torch's own check (oneDNN finds AVX512-BF16 or AMX) and a timed probe (a bf16 matmul
  at least as fast as fp32), because CPUs without native bf16 emulate it at 1/50 to 1/100 of fp32
  speed.
- ``fp32``: everything in float32.
- ``bf16``: bf16 compute even where it is emulated (warned, with the measured slowdown).
- ``fp16``: fp16 compute, CUDA only.
- ``bf16-pure``: bf16 weights and optimizer states, no fp32 master copy: the memory saving large
  models under DeepSpeed want. Updates smaller than bf16's resolution (2^-8 of a weight) are lost.

Training keeps fp32 master weights and optimizer states under autocast for every setting but
``bf16-pure``. Evaluation has nothing to update, so it loads the weights in the compute dtype.
"""

from __future__ import annotations

import functools
import time
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch

from rlsp.errors import ConfigError

SETTINGS = ("auto", "fp32", "bf16", "fp16", "bf16-pure")
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class CpuBf16Probe:
    """What this CPU does with bf16: torch's check and a timed matmul in both dtypes."""

    torch_says_native: bool
    fp32_gflops: float
    bf16_gflops: float

    @property
    def native(self) -> bool:
        return self.torch_says_native and self.bf16_gflops >= self.fp32_gflops

    @property
    def slowdown(self) -> float:
        """How many times slower a bf16 matmul is than fp32 here (below 1: faster)."""
        return self.fp32_gflops / max(self.bf16_gflops, 1e-9)


@dataclass(frozen=True)
class Precision:
    setting: str  # the recipe's model.precision
    compute: torch.dtype  # what matmuls run in
    weights: torch.dtype  # trained weights and optimizer states (fp32 unless bf16-pure)
    reason: str  # why, in words, for the log and the run summary

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype over fp32 weights, or None when weights already are the compute dtype."""
        return None if self.compute == self.weights else self.compute

    def autocast(self, device_type: str) -> AbstractContextManager:
        dtype = self.autocast_dtype
        return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def summary(self) -> dict:
        return {
            "setting": self.setting,
            "compute": DTYPE_NAMES[self.compute],
            "weights": DTYPE_NAMES[self.weights],
            "reason": self.reason,
            "cpu": cpu_description(),
        }

    def describe(self) -> str:
        weights = "" if self.compute == self.weights else f", {DTYPE_NAMES[self.weights]} weights"
        return (f"precision: {DTYPE_NAMES[self.compute]} compute{weights} "
                f"(model.precision={self.setting}: {self.reason})")


def resolve_precision(setting: str, device: torch.device | str, *, training: bool) -> Precision:
    """The precision ``setting`` means on ``device``; warns about choices that will be slow or lossy."""
    device = torch.device(device)
    if setting not in SETTINGS:
        raise ConfigError(f"model.precision: unknown setting {setting!r}; use one of {', '.join(SETTINGS)}.")
    on_cuda = device.type == "cuda"
    if setting == "fp32":
        return _made(setting, torch.float32, training, "asked for by the recipe")
    if setting == "fp16":
        if not on_cuda:
            raise ConfigError("model.precision: fp16 needs a CUDA GPU; use 'auto' or 'fp32' on the CPU.")
        return _made(setting, torch.float16, training, "asked for by the recipe")
    if setting == "auto":
        native, why = bf16_is_native(device)
        return _made(setting, torch.bfloat16 if native else torch.float32, training, why)
    # bf16 or bf16-pure, asked for by name
    native, why = bf16_is_native(device)
    if not native:
        warnings.warn(f"model.precision={setting} on a device without native bf16 ({why}); expect it to be slow. "
                      f"model.precision=auto picks fp32 here.", stacklevel=2)
    if setting == "bf16-pure" and training:
        warnings.warn("model.precision=bf16-pure trains bf16 weights with bf16 optimizer states: an update "
                      "smaller than 2^-8 of a weight rounds away, so small learning rates may not move "
                      "the model. Use 'bf16' (fp32 master weights) unless memory forces this.", stacklevel=2)
        return Precision(setting, torch.bfloat16, torch.bfloat16, f"asked for by the recipe; {why}")
    return _made(setting, torch.bfloat16, training, f"asked for by the recipe; {why}")


def _made(setting: str, compute: torch.dtype, training: bool, reason: str) -> Precision:
    # Training keeps fp32 master weights; inference has nothing to update and loads compute-dtype weights.
    return Precision(setting, compute, torch.float32 if training else compute, reason)


def bf16_is_native(device: torch.device) -> tuple[bool, str]:
    """(native, reason in words) for bf16 matmuls on ``device``."""
    if device.type == "cuda":
        return cuda_bf16_is_native(device)
    if device.type != "cpu":
        return False, f"no bf16 check for device type {device.type!r}"
    probe = probe_cpu_bf16()
    if not probe.torch_says_native:
        return False, (f"this CPU has no native bf16 (no AVX512-BF16 or AMX); a bf16 matmul ran "
                       f"{probe.slowdown:.0f}x slower than fp32 "
                       f"({probe.bf16_gflops:.1f} vs {probe.fp32_gflops:.1f} GFLOP/s)")
    if not probe.native:
        return False, (f"torch reports native bf16, but a bf16 matmul ran {probe.slowdown:.1f}x slower than fp32 "
                       f"({probe.bf16_gflops:.1f} vs {probe.fp32_gflops:.1f} GFLOP/s)")
    return True, (f"native bf16 on this CPU: a bf16 matmul ran {1 / probe.slowdown:.1f}x as fast as fp32 "
                  f"({probe.bf16_gflops:.1f} vs {probe.fp32_gflops:.1f} GFLOP/s)")


# NVIDIA GPUs run bf16 matmuls natively from compute capability 8.0 (Ampere) on.
NATIVE_BF16_CAPABILITY = (8, 0)


def cuda_bf16_is_native(device: torch.device) -> tuple[bool, str]:
    """bf16 on the run's own GPU, without emulation. ``torch.cuda.is_bf16_supported()`` alone
    counts emulated bf16 (V100, T4: several times slower than fp16 or fp32) and asks about the
    current device rather than the run's."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    if torch.version.hip:  # AMD: ask torch about this device, emulation excluded
        with torch.cuda.device(index):
            native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = tuple(torch.cuda.get_device_capability(index)) >= NATIVE_BF16_CAPABILITY
    return (True, f"{name} (cuda:{index}) runs bf16 natively") if native else (
        False, f"{name} (cuda:{index}) has no native bf16 (emulated only)")


@functools.lru_cache(maxsize=1)
def probe_cpu_bf16(size: int = 512, budget_s: float = 0.3) -> CpuBf16Probe:
    """Time ``size``^3 matmuls in fp32 and bf16 on the current thread settings (a fraction of a
    second). 512: at 256 a CPU with AVX512-BF16 showed bf16 anywhere from 1.1x slower to 2x faster
    than fp32 between runs, and a demo's stages chose different precisions; at 512 it was 2.2-2.4x
    faster every time."""
    return CpuBf16Probe(torch.ops.mkldnn._is_mkldnn_bf16_supported(), _matmul_gflops(torch.float32, size, budget_s),
                        _matmul_gflops(torch.bfloat16, size, budget_s))


def _matmul_gflops(dtype: torch.dtype, size: int, budget_s: float) -> float:
    """The best of a few timed matmuls after warm-up calls (oneDNN picks and builds its bf16
    kernels over the first calls: timing those made one process of a run choose fp32 and the next
    bf16 on the same CPU)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or (spent < budget_s / 2 and runs < 50):  # an emulated bf16 matmul stops after three
        start = time.perf_counter()
        a @ b
        elapsed = time.perf_counter() - start
        spent, runs = spent + elapsed, runs + 1
        if runs > 2:  # the first two: kernel selection and warm-up
            best = min(best, elapsed)
    return 2 * size**3 / best / 1e9


@functools.lru_cache(maxsize=1)
def cpu_description() -> str:
    """The CPU model and the flags that decide matmul speed, e.g. 'AMD EPYC (avx2, fma; no avx512)'."""
    model, flags = "unknown CPU", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    else:
        import platform

        model = platform.processor() or platform.machine()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    present = [f for f in wanted if f in flags]
    missing = "" if "avx512f" in flags or not flags else "; no avx512"
    return f"{model} ({', '.join(present) or 'flags unknown'}{missing}), {torch.get_num_threads()} torch threads"
