"""Writing outputs so that a failed or killed run never leaves a half-written file: write a temp name, rename."""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path`` (atomic on one filesystem),
    on error it is removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole, on error it is
    removed and ``path`` keeps its previous content (or stays absent)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():  # left by a killed run
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def map_cases(fn, jobs: list, workers: int, desc: str, progress: bool = True) -> list:
    """``[fn(j) for j in jobs]`` in order, over ``workers`` processes when > 1, with a progress bar."""
    from tqdm import tqdm

    bar = dict(total=len(jobs), desc=desc, unit="case", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(tqdm(pool.map(fn, jobs), **bar))
    return [fn(j) for j in tqdm(jobs, **bar)]
