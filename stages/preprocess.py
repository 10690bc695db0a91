"""Stage `preprocess`: the cases of ``data.source`` (BraTS layout, or the WMH challenge's in the WMH pipeline) ->
memory-mappable arrays + manifest.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import default_workers, run_stage  # noqa: E402
from dcseg.config import load_params  # noqa: E402
from dcseg.data.dataset import READERS, build_preprocessed, data_root, data_source, min_size_param  # noqa: E402
from dcseg.runs import PREPROCESSED  # noqa: E402



def main(overrides):
    cfg = load_params(overrides)
    source = data_source(cfg)
    raw_dir = data_root(cfg) / source
    min_size = min_size_param(cfg)
    manifest = build_preprocessed(raw_dir, Path("splits") / source, PREPROCESSED, min_size, workers=default_workers(),
                                  reader=READERS[source])
    print(f"preprocess: {len(manifest)} cases from {raw_dir} -> {PREPROCESSED} "
          f"(shapes {manifest[['x', 'y', 'z']].min().tolist()} .. {manifest[['x', 'y', 'z']].max().tolist()})")


if __name__ == "__main__":
    run_stage("preprocess", main)
