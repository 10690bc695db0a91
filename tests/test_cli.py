"""run_stage: --help prints the stage's own usage; an error stops the stage with one line, after any progress bar."""

import subprocess
import sys
import textwrap

import pytest

from dcseg.cli import run_stage

from .conftest import REPO


def _never_called(argv):
    raise AssertionError("main ran under --help")


def test_help_prints_the_usage_the_stage_passes(capsys):
    usage = "usage: python stages/train.py MODEL [--ablation VARIANT] [key=value ...]"
    run_stage("train", _never_called, ["dcseg", "--help"], usage=usage)
    assert capsys.readouterr().out == usage + "\n"


def test_help_without_a_usage_prints_the_generic_one(capsys):
    run_stage("phantom", _never_called, ["-h"])
    assert capsys.readouterr().out.startswith("usage: python stages/phantom.py [key=value ...]")


STAGE = """
import sys
sys.path.insert(0, {repo!r})
from dcseg.cli import run_stage
from dcseg.data.errors import DataError
from dcseg.io import map_cases


def work(i):
    if i == 3:
        raise DataError("case BraTS20_Training_004: broken")
    return i


def main(argv):
    map_cases(work, list(range(5)), {workers}, "preprocess", progress=True)


if __name__ == "__main__":
    run_stage("preprocess", main, [])
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_error_mid_progress_bar_is_the_last_line_on_its_own(tmp_path, workers):
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent(STAGE.format(repo=str(REPO), workers=workers)))
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "%|" in p.stderr and "Traceback" not in p.stderr  # a bar was drawn; no traceback
    # What a terminal shows: each line as left by its last carriage return. The error is a line of its own (not
    # appended to the bar) and the last one (no bar redrawn after it).
    shown = [line.split("\r")[-1] for line in p.stderr.split("\n") if line.split("\r")[-1].strip()]
    assert shown[-1] == "preprocess: error: case BraTS20_Training_004: broken", repr(p.stderr)
