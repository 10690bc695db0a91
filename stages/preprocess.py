"""Stage `preprocess`: BraTS-layout cases of ``data.source`` -> memory-mappable arrays + manifest.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import default_workers, run_stage  # noqa: E402
from dcseg.config import ConfigError, load_params, require  # noqa: E402
from dcseg.data.dataset import build_preprocessed  # noqa: E402

OUT_DIR = Path("data/preprocessed")


def main(overrides):
    cfg = load_params(overrides)
    source = require(cfg, "data.source", ("phantom", "brats2020"))
    raw_dir = Path(require(cfg, "data.root")) / source
    min_size = list(require(cfg, "preprocess.min_size"))
    if len(min_size) != 3 or any(int(v) < 0 for v in min_size):
        raise ConfigError(f"preprocess.min_size must be 3 non-negative ints, got {min_size}")
    manifest = build_preprocessed(raw_dir, Path("splits") / source, OUT_DIR, min_size, workers=default_workers())
    print(f"preprocess: {len(manifest)} cases from {raw_dir} -> {OUT_DIR} "
          f"(shapes {manifest[['x', 'y', 'z']].min().tolist()} .. {manifest[['x', 'y', 'z']].max().tolist()})")


if __name__ == "__main__":
    run_stage("preprocess", main)
