"""Stage `wmh_phantom` (the WMH pipeline, wmh/dvc.yaml): write the WMH phantom in the MICCAI 2017 challenge layout,
with its scan -> subject map (``subjects.csv`` at the phantom's root: two time points per subject), and its lesion
statistics. The split is the next stage's (stages/wmh_split.py), which reads the data folder of either source.

With ``data.source`` other than ``wmh_phantom`` (the real challenge data, ``wmh2017``) it generates nothing (a
marker file says so).
"""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import default_workers, run_stage  # noqa: E402
from dcseg.config import load_params, require  # noqa: E402
from dcseg.data.dataset import WMH_SOURCES, data_root, data_source  # noqa: E402
from dcseg.data.wmh_phantom import WmhPhantomConfig, generate, summarise  # noqa: E402
from dcseg.io import write_text_atomic  # noqa: E402

STATS = Path("reports/wmh_phantom_stats.json")


def main(overrides):
    cfg = load_params(overrides)
    source = data_source(cfg, WMH_SOURCES)
    pcfg = WmhPhantomConfig.from_dict(require(cfg, "phantom"))
    out_dir = data_root(cfg) / "wmh_phantom"

    if source != "wmh_phantom":
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "NOT_GENERATED.txt").write_text(f"data.source is {source!r}: the WMH phantom was not generated.\n")
        stats = {"generated": False, "data.source": source}
    else:
        rows = generate(pcfg, out_dir, workers=default_workers())
        stats = {**summarise(rows), "voxel_size_mm": list(pcfg.voxel_size)}
    STATS.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(STATS, json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    run_stage("wmh_phantom", main)
