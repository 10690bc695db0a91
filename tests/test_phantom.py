import numpy as np
import pytest

from dcseg.config import ConfigError
from dcseg.data import read_case
from dcseg.data.brats import MODALITIES
from dcseg.data.phantom import PhantomConfig, case_id, generate, make_case, summarise

# 3 mm keeps these tests fast; the physics and the code path are those of the default 2 mm phantom.
CFG = PhantomConfig(n_cases=4, voxel_size=3.0)
FLAIR, T1CE, T1, T2 = (MODALITIES.index(m) for m in ("flair", "t1ce", "t1", "t2"))


@pytest.fixture(scope="module")
def cases():
    return [make_case(CFG, i) for i in range(6)]


def test_deterministic_and_independent_of_case_count(cases):
    again = make_case(PhantomConfig(n_cases=100, voxel_size=3.0), 1)
    np.testing.assert_array_equal(again.image, cases[1].image)
    np.testing.assert_array_equal(again.seg, cases[1].seg)
    other_seed = make_case(PhantomConfig(n_cases=4, voxel_size=3.0, seed=7), 1)
    assert not np.array_equal(other_seed.seg, cases[1].seg)
    assert not np.array_equal(cases[0].image, cases[1].image)


def test_labels_and_layout(cases):
    for c in cases:
        assert c.image.dtype == np.int16 and c.image.shape == (4,) + c.seg.shape
        labels = set(np.unique(c.seg).tolist())
        assert labels <= {0, 1, 2, 4} and {1, 2} <= labels
        assert (4 in labels) == c.has_enhancing
        brain = (c.image != 0).any(0)
        assert brain[c.seg > 0].all()  # tumour inside the skull-stripped brain
        assert (c.image >= 0).all()


def _means(c, mask):
    return c.image[:, mask].astype(float).mean(1)


def test_contrast_follows_mri_physics(cases):
    enhancing = [c for c in cases if c.has_enhancing]
    assert enhancing
    for c in enhancing:
        et, nec, ed = _means(c, c.seg == 4), _means(c, c.seg == 1), _means(c, c.seg == 2)
        assert et[T1CE] > nec[T1CE] and et[T1CE] > ed[T1CE]
        assert not et[T1] > ed[T1]                 # no enhancement without contrast agent
        assert nec[T2] > ed[T2]                    # fluid-like necrosis is T2-bright
    for c in cases:
        ed = _means(c, c.seg == 2)
        brain = (c.image != 0).any(0) & (c.seg == 0)
        wm_like = brain & (c.image[T1] > np.percentile(c.image[T1][brain], 85))  # brightest T1 = white matter
        wm = _means(c, wm_like)
        assert ed[FLAIR] > 1.3 * wm[FLAIR] and ed[T2] > 1.3 * wm[T2]
        # CSF (darkest T1 inside the brain) is bright in T2 and suppressed in FLAIR
        csf = brain & (c.image[T1] < np.percentile(c.image[T1][brain], 5))
        assert _means(c, csf)[T2] > wm[T2] and _means(c, csf)[FLAIR] < wm[FLAIR]


def test_enhancing_tumour_is_hard_to_see_without_t1ce(cases):
    """The missing-modality problem is real: ET/edema contrast is large only in T1ce."""
    for c in (c for c in cases if c.has_enhancing):
        et, ed = _means(c, c.seg == 4), _means(c, c.seg == 2)
        ratio = et / ed
        assert ratio[T1CE] > 1.25
        for k in (FLAIR, T1, T2):
            assert abs(ratio[k] - 1) < 0.15, (MODALITIES[k], ratio)


def test_generate_writes_brats_layout_read_back_by_reader(tmp_path):
    stats = generate(CFG, tmp_path / "phantom", workers=1, progress=False)
    assert [s["case"] for s in stats] == [case_id(i) for i in range(4)]
    d = tmp_path / "phantom" / "BraTS20_Training_002"
    assert sorted(p.name for p in d.iterdir()) == sorted(
        f"BraTS20_Training_002_{m}.nii.gz" for m in ("flair", "t1ce", "t1", "t2", "seg"))
    image, seg, affine = read_case(d)
    ref = make_case(CFG, 1)
    np.testing.assert_array_equal(image, ref.image.astype(np.float32))
    np.testing.assert_array_equal(seg, ref.seg)
    assert np.allclose(np.abs(np.diag(affine)[:3]), 3.0)
    s = summarise(stats)
    assert s["n_cases"] == 4 and s["mean_wt_ml"] > s["mean_tc_ml"] >= s["mean_et_ml"] >= 0
    # no temp folders left behind
    assert [p.name for p in tmp_path.iterdir()] == ["phantom"]


def test_tumour_sizes_comparable_to_brats():
    """BraTS 2020: whole tumour ~ 50-200 ml in a ~1.4-1.9 l brain; about 15% of cases without ET."""
    cfg = PhantomConfig(voxel_size=4.0)
    cs = [make_case(cfg, i) for i in range(20)]
    vox_ml = 4.0 ** 3 / 1000
    wt = np.array([(c.seg > 0).sum() * vox_ml for c in cs])
    assert 40 < wt.mean() < 250 and wt.min() > 5
    assert 1 <= sum(not c.has_enhancing for c in cs) <= 8


def test_unknown_param_is_named_by_its_full_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['phantom\.noise_level'\]"):
        PhantomConfig.from_dict({"noise_level": 0.1})
