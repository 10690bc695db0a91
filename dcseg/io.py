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


def staging_dir(path: str | Path) -> Path:
    """A fresh, empty temporary folder beside ``path``. Every temporary name here is ``.<name>.tmp*``, which git
    (.gitignore) and DVC (.dvcignore) ignore; what a killed run left behind under such a name is removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for left in path.parent.glob(f".{path.name}.tmp*"):
        shutil.rmtree(left, ignore_errors=True) if left.is_dir() else left.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.mkdir()
    return tmp


def replace_dir(tmp: str | Path, path: str | Path) -> None:
    """Put the finished folder ``tmp`` in the place of ``path`` as a whole: the old folder is moved aside first, put
    back if the new one cannot take its place, and deleted only once the new one is in place."""
    path = Path(path)
    old = path.with_name(f".{path.name}.tmp.old{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old.exists():
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole, on error it is
    removed and ``path`` keeps its previous content (or stays absent)."""
    tmp = staging_dir(path)
    try:
        yield tmp
        replace_dir(tmp, path)
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
