"""The preprocessed dataset's manifest (``data/preprocessed/manifest.csv``, written by ``dcseg.data.dataset``): one row
per case with its split, shape, crop box, padding, spacing and label counts. Read here, by every stage that needs it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcseg.data.errors import DataError

MANIFEST = "manifest.csv"


def read_manifest(preprocessed_dir: str | Path, columns: tuple[str, ...] = ("case", "split")) -> pd.DataFrame:
    """The manifest of ``preprocessed_dir`` (one row per case, ``case`` and ``split`` read as text), checked for the
    ``columns`` the caller needs; a missing file or column names it and says what to rerun."""
    path = Path(preprocessed_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} is missing; run the preprocess stage first (dvc repro preprocess)")
    manifest = pd.read_csv(path, dtype={"case": str, "split": str})
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; rerun the preprocess stage")
    return manifest
