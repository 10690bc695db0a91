"""Stage `report`: the paper's Tables 1-2 and figures from the evaluated runs
-> reports/table1.md, reports/table2.md, reports/figures/{dice_heatmap,example_case}.png, reports/summary.json.

usage: python stages/report.py [key=value ...]   (keys as in params.yaml, e.g. report.et_column=dice)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.config import load_params  # noqa: E402
from dcseg.report import run_report  # noqa: E402


def main(argv):
    cfg = load_params(argv)
    for path in run_report(cfg):
        print(f"report: wrote {path}")


if __name__ == "__main__":
    run_stage("report", main, torch_threads=True)
