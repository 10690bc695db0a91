"""Stage `phantom`: write the anatomical phantom in the BraTS 2020 layout, its split and a preview figure.

With ``data.source`` other than ``phantom`` it generates nothing (a marker file says so); the split files for
the phantom are still written (case ids only, no work).
"""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import default_workers, run_stage  # noqa: E402
from dcseg.config import load_params, require  # noqa: E402
from dcseg.data import phantom  # noqa: E402
from dcseg.data.brats import read_case  # noqa: E402
from dcseg.data.dataset import BRATS_SOURCES, data_root, data_source  # noqa: E402
from dcseg.data.preprocess import BRATS_TO_CLASS  # noqa: E402
from dcseg.data.splits import make_split, write_split  # noqa: E402
from dcseg.validate import non_negative_int  # noqa: E402

SPLIT_DIR = Path("splits/phantom")
FIGURE = Path("reports/phantom.png")
STATS = Path("reports/phantom_stats.json")


def main(overrides):
    cfg = load_params(overrides)
    # every setting is checked before anything is written
    source = data_source(cfg, BRATS_SOURCES)
    pcfg = phantom.PhantomConfig.from_dict(require(cfg, "phantom"))
    seed = non_negative_int("split.seed", require(cfg, "split.seed"))  # a numpy seed
    out_dir = data_root(cfg) / "phantom"

    ids = [phantom.case_id(i) for i in range(pcfg.n_cases)]
    write_split(SPLIT_DIR, make_split(ids, seed=seed))

    if source != "phantom":
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "NOT_GENERATED.txt").write_text(f"data.source is {source!r}: the phantom was not generated.\n")
        _write_placeholders(source)
        return

    stats = phantom.generate(pcfg, out_dir, workers=default_workers())
    summary = phantom.summarise(stats)
    summary["voxel_size_mm"] = pcfg.voxel_size
    summary["size_on_disk_mb"] = round(sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()) / 2**20, 1)
    STATS.parent.mkdir(parents=True, exist_ok=True)
    STATS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))

    # Preview: the first case with enhancing tumour, read back through the BraTS reader like real data.
    # the first few cases, the one with the largest tumour core: the preview shows every label
    first = max(stats[:5], key=lambda s: s["tc_ml"] * s["has_enhancing"])["case"]
    image, seg, _ = read_case(out_dir / first)
    from dcseg.figures import plot_case

    plot_case(image, BRATS_TO_CLASS[seg], FIGURE, f"phantom {first} ({pcfg.voxel_size:g} mm)")


def _write_placeholders(source):
    from dcseg.figures import placeholder_figure

    STATS.parent.mkdir(parents=True, exist_ok=True)
    STATS.write_text(json.dumps({"generated": False, "data.source": source}, indent=2) + "\n")
    placeholder_figure(FIGURE, f"phantom not generated: data.source is {source}")


if __name__ == "__main__":
    run_stage("phantom", main)
