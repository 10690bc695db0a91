"""Stage `split` of the WMH pipeline (wmh/dvc.yaml): the seeded subject-disjoint split of the scans under
``<data.root>/<data.source>`` with its scan -> subject map (``dcseg.data.wmh.scan_subjects``: the phantom's two time
points per subject, or one scan per subject for the challenge's release), written to ``splits/<data.source>/``.

A stage of its own, with the data folder as its dependency, so a changed set of scans (the real challenge data)
writes a new split; the phantom's split follows its generation.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.config import load_params, require  # noqa: E402
from dcseg.data.dataset import WMH_SOURCES, data_root, data_source  # noqa: E402
from dcseg.data.splits import write_split  # noqa: E402
from dcseg.data.wmh import SUBJECTS_FILE, format_subjects, scan_subjects, subject_disjoint_split  # noqa: E402
from dcseg.io import write_text_atomic  # noqa: E402
from dcseg.validate import non_negative_int  # noqa: E402


def main(overrides):
    cfg = load_params(overrides)
    source = data_source(cfg, WMH_SOURCES)
    seed = non_negative_int("split.seed", require(cfg, "split.seed"))
    subjects = scan_subjects(data_root(cfg) / source)
    split = subject_disjoint_split(subjects, seed)
    split_dir = Path("splits") / source
    write_split(split_dir, split)
    write_text_atomic(split_dir / SUBJECTS_FILE, format_subjects(subjects))
    print(f"split: {len(subjects)} scans of {len(set(subjects.values()))} subjects -> "
          + ", ".join(f"{name} {len(ids)}" for name, ids in split.items()) + f" ({split_dir})")


if __name__ == "__main__":
    run_stage("split", main)
