"""The paper-profile benchmarks' code paths, at tiny sizes on the CPU (their --dry modes): the GPU check trains and
evaluates each paper-profile model (official DC-Seg included) through the project's trainer and evaluation, and the
smoke benchmark runs each model under its memory limit in a subprocess."""

import re
import subprocess
import sys

import pytest

from .conftest import REPO

MODELS = ("dcseg", "rfnet", "mmformer")


def _run(script: str, *args: str) -> str:
    p = subprocess.run([sys.executable, f"benchmarks/{script}", "--dry", *args], cwd=REPO, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.mark.slow
def test_gpu_check_dry_trains_and_evaluates_every_paper_model(tmp_path):
    out = _run("gpu_check.py", "--workdir", str(tmp_path))
    assert "data: 4 synthetic cases" in out
    for model in MODELS:
        row = re.search(rf"^{model}\s+2\s+\d+\s+([\d.]+)\s+nan\s+([\d,]+)\s+([\d.]+)h", out, re.M)
        assert row, out
        assert float(row.group(1)) > 0 and int(row.group(2).replace(",", "")) >= 28_000
    assert "implementation=official" in out  # DC-Seg runs as the official code in the paper profile
    assert (tmp_path / "models" / "dcseg" / "model.pt").is_file()


def test_paper_smoke_benchmark_dry_reports_seconds_and_memory_per_model():
    # (the official DC-Seg's paper path, the slowest, is covered by the GPU check's dry run above)
    out = _run("bench_paper_profile.py", "--limit-gib", "8", "--models", "rfnet", "mmformer")
    for model in ("rfnet", "mmformer"):
        assert re.search(rf"^{model}\s+[\d,]+\s+\d+\s+[\d.]+\s+\d+\s+[\d.]+\s+[\d.]+G", out, re.M), out


def test_the_smoke_benchmark_estimates_what_a_run_over_the_limit_needs():
    spec = {"base_rss": 1.0, "peak_rss": 3.0}
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_paper_profile
    finally:
        sys.path.pop(0)
    assert bench_paper_profile.estimate_bytes(spec, 8.0) == 1.0 + 2.0 * 8
