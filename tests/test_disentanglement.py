"""The Fig. 3 numbers on synthetic embeddings with known answers (dcseg/disentanglement.py)."""

import numpy as np
import pytest

from dcseg.disentanglement import (cosine_similarity, cross_modality_retrieval, disentanglement, item_labels,
                                   modality_identification, same_and_different_case_similarity)


def test_items_are_case_major():
    case, modality = item_labels(3, 2)
    assert case.tolist() == [0, 0, 1, 1, 2, 2] and modality.tolist() == [0, 1, 0, 1, 0, 1]


def test_retrieval_perfect_when_anatomy_depends_only_on_the_case():
    rng = np.random.default_rng(0)
    per_case = rng.normal(size=(5, 8))
    anatomy = np.repeat(per_case, 3, axis=0) + 0.01 * rng.normal(size=(15, 8))  # 5 cases x 3 modalities
    case, modality = item_labels(5, 3)
    similarity = cosine_similarity(anatomy)
    assert cross_modality_retrieval(similarity, case, modality) == 1.0
    same, different = same_and_different_case_similarity(similarity, case, modality)
    assert same > 0.99 and different < same


def test_retrieval_ignores_the_same_modality_and_counts_each_miss():
    # 3 cases x 2 modalities; items 0..5 = (c0,m0) (c0,m1) (c1,m0) (c1,m1) (c2,m0) (c2,m1)
    s = np.full((6, 6), 0.1)
    np.fill_diagonal(s, 1.0)
    s[0, 2] = s[2, 0] = 0.99  # same modality, other case: never a candidate
    for a, b in ((0, 1), (2, 3), (4, 5)):
        s[a, b] = s[b, a] = 0.5  # each case's two modalities match ...
    s[5, 2] = 0.9  # ... except that (c2, m1) finds (c1, m0) first: one miss of six
    case, modality = item_labels(3, 2)
    assert cross_modality_retrieval(s, case, modality) == pytest.approx(5 / 6)
    same, different = same_and_different_case_similarity(s, case, modality)
    assert same == pytest.approx(0.5)
    # different-case cross-modality pairs: 12 ordered pairs, one of them 0.9, the rest 0.1
    assert different == pytest.approx((11 * 0.1 + 0.9) / 12)


def test_modality_identification_leave_one_case_out():
    axes = np.eye(3)  # modality m's code points along axis m
    codes = np.stack([axes + 0.05 * np.random.default_rng(i).normal(size=(3, 3)) for i in range(4)])
    assert modality_identification(codes) == 1.0
    # one case whose modality-0 code points along modality 2's axis: that one code is misread
    codes[1, 0] = axes[2]
    assert modality_identification(codes) == pytest.approx(11 / 12)
    # codes that carry no modality information: every item ties and goes to modality 0 (1 in 3)
    assert modality_identification(np.ones((4, 3, 5))) == pytest.approx(1 / 3)


def test_summary_and_bad_shapes():
    codes = np.stack([np.eye(2)] * 3)
    result = disentanglement(np.eye(6), codes)
    assert result.cases == 3 and result.modalities == 2 and result.chance_retrieval == pytest.approx(1 / 3)
    assert result.modality_identification == 1.0
    assert disentanglement(np.eye(2), codes[:1]).modality_identification is None  # one case: no centroids
    with pytest.raises(ValueError, match="does not match 6 items"):
        cross_modality_retrieval(np.eye(5), *item_labels(3, 2))
    with pytest.raises(ValueError, match="N >= 2"):
        modality_identification(np.ones((1, 2, 3)))
