"""The budget projection's pure parts (benchmarks/bench_budget.py): the count of validation scorings of a schedule
and the longest-first packing of runs on the pipeline's lanes."""

import importlib.util

from .conftest import REPO

spec = importlib.util.spec_from_file_location("bench_budget", REPO / "benchmarks" / "bench_budget.py")
bench_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_budget)


def test_scorings_follow_the_training_schedule():
    assert bench_budget.scorings(1400, 200) == 7    # the BraTS default: 200, 400, ..., 1400
    assert bench_budget.scorings(1200, 150) == 8    # WMH
    assert bench_budget.scorings(10, 3) == 4        # 3, 6, 9 and after the last step
    assert bench_budget.scorings(10, 0) == 0        # validation off


def test_longest_first_packing():
    # 5 -> A, 4 -> B, 3 -> B (7), 3 -> A (8), 3 -> B (10)
    assert bench_budget.lpt_wall([3, 5, 3, 4, 3], 2) == 10
    assert bench_budget.lpt_wall([3, 5, 3, 4, 3], 1) == 18
    assert bench_budget.lpt_wall([7, 1], 4) == 7    # more lanes than runs: the longest run
