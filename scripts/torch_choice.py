"""Which index the bootstrap installs torch from: pip's default, or the PyTorch CPU index.

`pip install torch==X` from PyPI on Linux takes the CUDA build, which pulls several GB of nvidia-* wheels and
triton. On a machine without an NVIDIA GPU that is wasted, so the bootstrap asks this script first. It lets
pip resolve the pin with `--dry-run --report`, looks at what pip would take, and only when that is a CUDA
build and no GPU is present prints `--index-url https://download.pytorch.org/whl/cpu`. In every other case it
prints nothing, so an offline machine with a local wheel never waits on an index it cannot reach.

Usage: python scripts/torch_choice.py torch==2.13.0
stdout: the extra pip arguments (possibly none); stderr: one line saying why.

Standard library only: it runs in a fresh venv before anything is installed (Python >= 3.10).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_ARGS = ["--index-url", CPU_INDEX]


def normalize(name: str) -> str:
    """PEP 503 name: `nvidia_cublas_cu12` and `Nvidia-CUBLAS-cu12` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_cuda(name: str, version: str) -> bool:
    """A wheel that only a CUDA build of torch needs, or a CUDA build of torch itself (`2.13.0+cu126`)."""
    name = normalize(name)
    if name.startswith("nvidia-") or name == "triton":
        return True
    return name == "torch" and version.partition("+")[2].startswith("cu")


def installs(report: dict) -> list[tuple[str, str, str]]:
    """(name, version, url) of each distribution a pip `--report` says it would install."""
    if not isinstance(report, dict) or not isinstance(report.get("install"), list):
        raise ValueError("not a pip installation report: no 'install' list")
    rows = []
    for item in report["install"]:
        meta = item["metadata"]
        rows.append((meta["name"], meta["version"], item.get("download_info", {}).get("url", "?")))
    return rows


def choose(report: dict, gpu_present: bool) -> tuple[list[str], str]:
    """The pip arguments to add for torch, and one line saying why. Pure: decides from its inputs only."""
    rows = installs(report)
    torch = [(version, url) for name, version, url in rows if normalize(name) == "torch"]
    cuda = [normalize(name) for name, version, _ in rows if is_cuda(name, version)]
    if not torch:
        return [], "pip would install no torch (the pin is already satisfied); index settings unchanged"
    version, url = torch[0]
    if not cuda:
        return [], f"pip resolves torch {version} with no CUDA packages ({url}); index settings unchanged"
    listed = ", ".join(cuda[:3]) + (f", ... {len(cuda)} in all" if len(cuda) > 3 else "")
    if gpu_present:
        return [], f"pip resolves the CUDA build torch {version} ({listed}) and an NVIDIA GPU is present; taking it"
    return CPU_ARGS, (f"pip resolves the CUDA build torch {version} ({listed}) but no NVIDIA GPU is present; "
                      f"installing the CPU build from {CPU_INDEX} (set TORCH_SPEC to override)")


def detect_gpu(dev: Path = Path("/dev/nvidia0"), proc: Path = Path("/proc/driver/nvidia/gpus"),
               smi: str = "nvidia-smi", run=subprocess.run) -> bool:
    """Whether an NVIDIA GPU is present, without torch: the driver's device node or /proc entries, else
    `nvidia-smi -L` (bounded, so a hung driver cannot stall the install)."""
    if dev.exists() or (proc.is_dir() and any(proc.iterdir())):
        return True
    if shutil.which(smi) is None:
        return False
    try:
        done = run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def dry_run(spec: list[str], run=subprocess.run) -> tuple[dict | None, str]:
    """pip's own resolution of `spec` as a report, or (None, why it failed). Uses this interpreter's pip with
    its configuration untouched, so the answer is what the real install will do."""
    fd, path = tempfile.mkstemp(prefix="torch-report-", suffix=".json")
    os.close(fd)
    try:
        done = run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", path, *spec],
                   capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
            return None, lines[-1] if lines else f"pip exited with status {done.returncode}"
        try:
            return json.loads(Path(path).read_text()), ""
        except (OSError, ValueError) as err:
            return None, f"unreadable report: {err}"
    finally:
        Path(path).unlink(missing_ok=True)


def main(argv: list[str] | None = None, run=subprocess.run, platform: str = sys.platform,
         gpu=detect_gpu) -> int:
    spec = sys.argv[1:] if argv is None else argv
    if not spec:
        print("usage: torch_choice.py TORCH_REQUIREMENT [PIP_ARGS...]", file=sys.stderr)
        return 2
    shown = " ".join(spec)
    if not platform.startswith("linux"):
        # PyPI's macOS and Windows torch wheels are CPU (or MPS) builds: there is nothing to steer away from.
        print(f"bootstrap: no CUDA wheels by default on {platform}; installing {shown} with pip's own index settings",
              file=sys.stderr)
        print()
        return 0
    report, failure = dry_run(spec, run)
    if report is not None:
        try:
            args, why = choose(report, gpu())
        except (KeyError, TypeError, ValueError) as err:
            report, failure = None, f"unreadable report: {err!r}"
    if report is None:
        # Without pip's answer there is no ground to add an index: leave pip to do what it would anyway.
        args, why = [], f"pip's dry run of {shown} failed ({failure}); installing with pip's own index settings"
    print(f"bootstrap: {why}", file=sys.stderr)
    print(" ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
