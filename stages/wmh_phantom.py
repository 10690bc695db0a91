"""Stage `wmh_phantom` (the WMH pipeline, wmh/dvc.yaml): write the WMH phantom in the MICCAI 2017 challenge layout,
its subject-disjoint split with the scan -> subject map, and its lesion statistics.

With ``data.source`` other than ``wmh_phantom`` (the real challenge data, ``wmh2017``) it generates nothing (a
marker file says so) and writes the split of the scans found under ``<data.root>/wmh2017`` (one scan per subject).
"""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import default_workers, run_stage  # noqa: E402
from dcseg.config import load_params, require  # noqa: E402
from dcseg.data.dataset import WMH_SOURCES, data_root, data_source  # noqa: E402
from dcseg.data.splits import write_split  # noqa: E402
from dcseg.data.wmh import SUBJECTS_FILE, format_subjects, list_scans, subject_disjoint_split  # noqa: E402
from dcseg.data.wmh_phantom import WmhPhantomConfig, generate, summarise  # noqa: E402
from dcseg.io import write_text_atomic  # noqa: E402
from dcseg.validate import non_negative_int  # noqa: E402

STATS = Path("reports/wmh_phantom_stats.json")


def main(overrides):
    cfg = load_params(overrides)
    source = data_source(cfg, WMH_SOURCES)
    pcfg = WmhPhantomConfig.from_dict(require(cfg, "phantom"))
    seed = non_negative_int("split.seed", require(cfg, "split.seed"))
    out_dir = data_root(cfg) / "wmh_phantom"

    if source != "wmh_phantom":
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "NOT_GENERATED.txt").write_text(f"data.source is {source!r}: the WMH phantom was not generated.\n")
        subjects = {scan: scan for scan in list_scans(data_root(cfg) / source)}  # the challenge: a scan each
        stats = {"generated": False, "data.source": source, "scans": len(subjects)}
    else:
        rows = generate(pcfg, out_dir, workers=default_workers())
        subjects = {row["scan"]: row["subject"] for row in rows}
        stats = {**summarise(rows), "voxel_size_mm": list(pcfg.voxel_size)}
    split_dir = Path("splits") / source
    write_split(split_dir, subject_disjoint_split(subjects, seed))
    write_text_atomic(split_dir / SUBJECTS_FILE, format_subjects(subjects))
    STATS.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(STATS, json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    run_stage("wmh_phantom", main)
