"""What every stage script shares: argument handling and clean failure on bad input."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from dcseg.errors import CheckpointError
from dcseg.config import ConfigError
from dcseg.data.errors import DataError


def default_workers() -> int:
    """Worker processes for embarrassingly parallel stages (not a param: it does not change any output)."""
    return int(os.environ.get("DCSEG_WORKERS", max(1, min(4, os.cpu_count() or 1))))


def run_stage(name: str, main: Callable[[list[str]], None], argv: list[str] | None = None,
              torch_threads: bool = False, usage: str | None = None) -> None:
    """Run ``main(overrides)``; bad data or config stops the stage with one clear line and exit status 1.
    ``torch_threads``: the stage runs a network; give it one thread per idle CPU (dcseg.hardware.set_threads).
    ``usage``: what ``--help`` prints, for a stage whose arguments are more than ``key=value`` overrides."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage or f"usage: python stages/{name}.py [key=value ...]   (keys as in params.yaml)")
        return
    if torch_threads:
        from dcseg.hardware import set_threads
        print(f"{name}: {set_threads()}")
    start = time.perf_counter()
    try:
        main(argv)
    except (DataError, ConfigError, CheckpointError) as e:
        _close_progress_bars()
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: done in {time.perf_counter() - start:.1f} s")


def _close_progress_bars() -> None:
    """Clear the progress bars the error interrupted. Left open, a bar holds the error's line, and the traceback
    keeps it alive until exit, when tqdm redraws it after the error. Cleared, not kept: a bar interrupted inside
    its loop has not counted its last steps, so its last state would be stale."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        for bar in list(getattr(tqdm.tqdm, "_instances", ())):
            bar.leave = False
            bar.close()
