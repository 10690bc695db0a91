"""Which device, precision and memory format a run uses: ``auto`` in params.yaml, resolved here at run time.

The params say ``device: auto``, ``precision: auto`` and ``channels_last: auto`` on every machine, so a DVC stage's
params are the same everywhere; what they resolve to is recorded next to every number (``train_summary.json``, the
evaluation metrics, the report header).

- device ``auto``: CUDA when available, else the CPU.
- precision ``auto``: bf16 autocast on CUDA with bf16 support; fp32 on every CPU. On an AVX2 CPU bf16 autocast has
  no fast path (convolutions fall back to ``slow_conv3d``): measured 7-10 s per RFNet 24^3 step against 0.34-0.43 s
  in fp32. On a CPU with native bf16 (AVX-512-BF16) it has one but gains nothing at the CPU profile's sizes
  (measured, 2-core AVX-512-BF16 EPYC, 1 thread, 24^3 batch 2: DC-Seg 0.45 s/step bf16 vs 0.45 fp32, RFNet 0.57 vs
  0.34, mmFormer 32^3 1.23 vs 0.97), and it would train the same params in another precision on another CPU kind,
  so ``auto`` keeps fp32 there: one precision for every CPU result. An explicit ``bf16`` still works on any CPU (with
  one warning line where it is emulated).
- fp32 on CUDA is true fp32: TF32 is switched off, because the references' numbers were not computed with it.
- channels_last ``auto``: ``channels_last_3d`` for fp32 on the CPU, where oneDNN's 3D convolutions measured faster in
  that layout (see the README's benchmark table), the default contiguous layout elsewhere (under CPU bf16 it
  measured slower; on CUDA it is unmeasured).
- threads: a stage that runs a network (train, evaluate, report) uses as many threads as CPUs are idle when it
  starts (``set_threads``, sampled over half a second; ``OMP_NUM_THREADS`` overrides). Two libgomp threads sharing
  their cores with another busy process collapse (measured on 2 AVX2 cores, one busy process beside the step:
  RFNet 0.38-0.69 s/step quiet -> 1.8-2.0 s with 2 threads, 0.64 s with 1). ``OMP_WAIT_POLICY=PASSIVE`` softens the
  collapse (0.9-1.0 s) but costs 20-70 % on a quiet machine, so the wait policy stays libgomp's default.
  ``scripts/parallel_repro.py`` runs one 1-thread job per CPU instead: more steps per hour than one 2-thread run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # what params.yaml may say
RESOLVED_PRECISIONS = ("fp32", "bf16")   # what a run executes

# measured on a 2-core AVX2 EPYC (torch 2.13), bf16 vs fp32 training step: RFNet and DC-Seg 11-12x, mmFormer 35x
EMULATED_BF16_SLOWDOWN = "10-35x"


def cpu_capability() -> str:
    """The SIMD level PyTorch dispatches to on this CPU (``AVX2``, ``AVX512``, ``DEFAULT``, ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_bf16_native() -> bool:
    """oneDNN has bf16 kernels and the CPU executes bf16 arithmetic (AVX-512-BF16 or AMX)."""
    try:
        mkldnn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return mkldnn and bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or an older torch
        return False


def cpu_kind() -> str:
    """What the README's times name: ``AVX2``, ``AVX-512`` or ``AVX-512-BF16`` (``AMX`` where it has tiles)."""
    capability = cpu_capability()
    if capability.startswith("AVX512"):
        try:
            if torch.cpu._is_amx_tile_supported():
                return "AMX"
        except AttributeError:
            pass
        return "AVX-512-BF16" if cpu_bf16_native() else "AVX-512"
    return capability


def idle_cpus(interval: float = 0.5) -> float | None:
    """How many of the machine's CPUs other processes leave free, sampled from /proc/stat over ``interval`` seconds
    (None where /proc/stat is unreadable, i.e. off Linux). Time spent by niced processes counts as free: they yield
    to a stage at normal priority (a ``nice`` background job does not cost the stage its threads)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        return values[1] + values[3] + values[4], sum(values)
    try:
        idle0, total0 = read()
        time.sleep(interval)
        idle1, total1 = read()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0)


def set_threads() -> str:
    """Give torch one thread per idle CPU (at least one, at most this process's CPUs); ``OMP_NUM_THREADS`` in the
    environment wins. Returns one line saying what was chosen and why."""
    if os.environ.get("OMP_NUM_THREADS"):
        return f"threads: {torch.get_num_threads()} (OMP_NUM_THREADS)"
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    idle = idle_cpus()
    if idle is None:
        return f"threads: {torch.get_num_threads()} (torch's default)"
    # a CPU counts as free unless it is at least a quarter busy: a short spike in the sample (an editor, git) must not
    # halve a stage's threads for its whole run (measured: mmFormer 0.9 -> 2.4 s/step on one thread), while a process
    # that holds a core (idle <= 1.0 of 2) still leaves one thread
    threads = max(1, min(available, int(idle + 0.75)))
    torch.set_num_threads(threads)
    return (f"threads: {threads} ({idle:.1f} of {os.cpu_count()} CPUs idle at the start; set OMP_NUM_THREADS to "
            "override)")


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {spec!r}")
    if spec == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if spec == "cuda" or (spec == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def bf16_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return cpu_bf16_native()


def resolve_precision(spec: str, device: torch.device, warn: bool = True) -> str:
    if spec not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {spec!r}")
    native = bf16_native(device)
    if spec == "auto":
        return "bf16" if native and device.type == "cuda" else "fp32"
    if spec == "bf16" and not native and warn:
        where = f"this CPU ({cpu_kind()})" if device.type == "cpu" else f"this GPU ({torch.cuda.get_device_name(device)})"
        print(f"warning: precision bf16 on {where} has no native bf16: expect each step about "
              f"{EMULATED_BF16_SLOWDOWN} slower than fp32; use precision auto or fp32", file=sys.stderr)
    return spec


def resolve_channels_last(spec, device: torch.device, precision: str) -> bool:
    if not (spec == "auto" or isinstance(spec, bool)):
        raise ValueError(f"channels_last must be auto, true or false, got {spec!r}")
    if spec == "auto":
        return device.type == "cpu" and precision == "fp32"
    return spec


@dataclass(frozen=True)
class Hardware:
    """What a run resolved its ``auto`` settings to, and on what."""

    device: str            # "cpu" or "cuda" (the type: a rank's index is not part of what produced a number)
    precision: str         # fp32 | bf16
    channels_last: bool
    cpu_capability: str    # torch's SIMD dispatch level
    cpu_kind: str          # AVX2 | AVX-512 | AVX-512-BF16 | AMX
    bf16_native: bool
    threads: int
    gpu: str | None = None

    def record(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        where = self.gpu if self.device == "cuda" else f"CPU {self.cpu_kind}, {self.threads} threads"
        layout = ", channels_last_3d" if self.channels_last else ""
        return f"{self.precision}{layout} on {where}"


def resolve(device: str = "auto", precision: str = "auto", channels_last="auto", local_rank: int = 0,
            warn: bool = True) -> tuple[torch.device, Hardware]:
    """(the torch device, the resolved record). Also switches TF32 off for fp32 on CUDA."""
    dev = resolve_device(device, local_rank)
    prec = resolve_precision(precision, dev, warn=warn)
    layout = resolve_channels_last(channels_last, dev, prec)
    if dev.type == "cuda" and prec == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    return dev, Hardware(device=dev.type, precision=prec, channels_last=layout, cpu_capability=cpu_capability(),
                         cpu_kind=cpu_kind(), bf16_native=bf16_native(dev), threads=torch.get_num_threads(), gpu=gpu)


def autocast(precision: str, device: torch.device):
    """The one autocast of the project: bf16 autocast for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last_3d if channels_last else torch.contiguous_format
