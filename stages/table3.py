"""Stage `table3` (the WMH pipeline, wmh/dvc.yaml): the paper's Table 3 from the WMH runs -> reports/table3.md and
reports/table3.json at the repository root (the paths given as arguments).

usage: python stages/table3.py MARKDOWN JSON [key=value ...]   (keys as in wmh/params.yaml)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.config import load_params  # noqa: E402


def main(argv):
    from dcseg.io import write_text_atomic
    from dcseg.report.table3 import PAPER_TABLE3, build_table3, render_table3, to_json

    if len(argv) < 2:
        raise SystemExit("usage: python stages/table3.py MARKDOWN JSON [key=value ...]")
    markdown, record = Path(argv[0]), Path(argv[1])
    cfg = load_params(argv[2:])
    table = build_table3(cfg, ".", Path(__file__).resolve().parent.parent / PAPER_TABLE3)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(markdown, render_table3(table))
    write_text_atomic(record, to_json(table))
    print(f"table3: wrote {markdown} and {record}")


if __name__ == "__main__":
    run_stage("table3", main)
