"""The seed-level statistics of the report (dcseg/report/statistics.py): the hierarchical bootstrap, Holm's
correction and the labelling rule, on synthetic data whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from dcseg.metrics import REGIONS
from dcseg.report.statistics import (compare_groups, group_statistics, hierarchical_bootstrap_ci,
                                     hierarchical_bootstrap_means, holm, label_difference, seed_averaged_cases)


def test_hierarchical_bootstrap_variance_is_the_seed_part_plus_the_case_part():
    """values = a_seed + b_case: the replicates' variance is var(a)/S + var(b)/C (population variances), so both
    sources count, and the case part does not shrink with more seeds."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 3.0, size=8), rng.normal(0, 5.0, size=30)
    values = a[:, None] + b[None, :]
    means = hierarchical_bootstrap_means(values, 40000, seed=1)
    expected = a.var() / len(a) + b.var() / len(b)
    assert means.var() == pytest.approx(expected, rel=0.05)
    assert means.mean() == pytest.approx(values.mean(), abs=0.05)
    # a case-only bootstrap of the seed-averaged cases would miss the seed part entirely
    assert means.var() > 1.5 * b.var() / len(b)


def test_no_seed_spread_leaves_the_case_bootstrap_and_one_seed_is_allowed():
    b = np.linspace(40, 90, 11)
    same = np.stack([b, b, b])
    means = hierarchical_bootstrap_means(same, 20000, seed=2)
    assert means.var() == pytest.approx(b.var() / len(b), rel=0.05)
    low, high = hierarchical_bootstrap_ci(b[None, :], 2000, seed=2)
    assert low < b.mean() < high
    with pytest.raises(ValueError, match="seeds, cases"):
        hierarchical_bootstrap_means(b, 10, 0)


def test_holm_known_values_and_undefined_tests():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.6, 0.9]) == [pytest.approx(1.0), pytest.approx(1.0)]  # 2 x 0.6 capped at 1, then monotone


@pytest.mark.parametrize("difference, p, sd, label, reason", [
    (3.0, 0.01, 1.0, "significant", "Holm p < 0.05"),
    (3.0, 0.2, 1.0, "within noise", "Holm p >= 0.05"),          # by p
    (0.8, 0.01, 1.0, "within noise", "difference| <= seed SD"),  # by the seed SD
    (-3.0, 0.01, 1.0, "significant", "Holm p < 0.05"),          # either sign
    (3.0, 0.01, None, "within noise", "seed spread unknown"),
    (3.0, None, 1.0, "within noise", "test undefined"),
])
def test_labelling_rule(difference, p, sd, label, reason):
    got = label_difference(difference, p, sd)
    assert got[0] == label and reason in got[1]


def _group(case_values: np.ndarray, seed_shifts) -> dict[int, pd.DataFrame]:
    """A group's per-seed per-case averages: the same values in every region, shifted per seed."""
    cases = [f"case{i:02d}" for i in range(len(case_values))]
    return {s: pd.DataFrame({r: case_values + shift for r in REGIONS}, index=cases)
            for s, shift in enumerate(seed_shifts)}


def test_compare_groups_labels_constructed_cases():
    rng = np.random.default_rng(3)
    base = rng.uniform(50, 90, size=20)
    groups = {
        "base": _group(base, [0.0, 0.5, -0.5]),                               # seed SD 0.5
        "better": _group(base + 4 + rng.normal(0, 0.3, 20), [0.0, 0.4, -0.4]),  # +4 on every case: significant
        "noisy_seeds": _group(base + 1.0, [0.0, 3.0, -3.0]),                   # +1 but seed SD 3: within noise by SD
        "same": _group(base + rng.normal(0, 2.0, 20), [0.0, 0.5, -0.5]),       # no systematic difference: by p
    }
    statistics = {name: group_statistics(g, 2000, 0) for name, g in groups.items()}
    assert statistics["base"].sd["WT"] == pytest.approx(0.5)
    assert statistics["base"].mean["WT"] == pytest.approx(base.mean())
    assert statistics["noisy_seeds"].low["WT"] == pytest.approx(base.mean() - 2.0)
    assert statistics["noisy_seeds"].high["WT"] == pytest.approx(base.mean() + 4.0)
    comparisons = compare_groups([("better", "base"), ("noisy_seeds", "base"), ("same", "base")], groups, statistics)
    assert len(comparisons) == 9  # 3 pairs x 3 regions, one Holm family
    by_pair = {(c.first, c.region): c for c in comparisons}
    assert by_pair[("better", "WT")].label == "significant"
    assert by_pair[("better", "WT")].difference == pytest.approx(statistics["better"].mean["WT"] - base.mean())
    assert by_pair[("noisy_seeds", "TC")].label == "within noise"
    assert "seed SD" in by_pair[("noisy_seeds", "TC")].reason and by_pair[("noisy_seeds", "TC")].p_holm < 0.05
    assert by_pair[("same", "ET")].label == "within noise" and "Holm p" in by_pair[("same", "ET")].reason
    # Holm: the adjusted p is at least the raw one
    assert all(c.p_holm >= c.test.p_value for c in comparisons)


def test_one_seed_group_has_no_sd_and_its_average_is_itself():
    base = np.linspace(60, 80, 5)
    one = _group(base, [0.0])
    stats = group_statistics(one, 500, 0)
    assert stats.n_seeds == 1 and stats.sd["WT"] is None and stats.low["WT"] == stats.high["WT"]
    pd.testing.assert_frame_equal(seed_averaged_cases(one), one[0])
