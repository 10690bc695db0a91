import re

import nibabel as nib
import numpy as np
import pytest

from dcseg.data import DataError
from dcseg.data.dataset import build_preprocessed
from dcseg.data.preprocess import load_case, nonzero_bbox, preprocess_case, widen_box
from dcseg.data.splits import write_split

from .conftest import make_arrays, write_case


def test_bbox_includes_last_nonzero_slice():
    image = np.zeros((4, 10, 10, 10), np.float32)
    image[1, 2:7, 3, 4:10] = 1.0  # last non-zero index on axis 2 is 9, the volume's last slice
    lo, hi = nonzero_bbox(image)
    assert lo == (2, 3, 4) and hi == (7, 4, 10)


def test_widen_box_inside_volume_then_pad():
    info = widen_box((2, 0, 5), (7, 10, 6), shape=(20, 12, 8), min_size=(8, 16, 4))
    assert (info.lo[0], info.hi[0]) == (1, 9)  # widened symmetrically, odd voxel after
    # axis 1: volume (12) is smaller than min_size (16): the whole axis plus 4 voxels of zero padding
    assert (info.lo[1], info.hi[1]) == (0, 12) and info.pad_before[1] + info.pad_after[1] == 4
    assert (info.lo[2], info.hi[2]) == (4, 8)  # would end at 8 = the volume's end: fits exactly
    edge = widen_box((0, 0, 0), (3, 3, 3), shape=(10, 10, 10), min_size=(6, 6, 6))
    assert (edge.lo, edge.hi) == ((0, 0, 0), (6, 6, 6))  # shifted inside the volume, not padded
    assert edge.pad_before == edge.pad_after == (0, 0, 0)


def test_preprocess_invariants():
    rng = np.random.default_rng(1)
    image, seg = make_arrays((30, 26, 22))
    image *= rng.uniform(0.5, 3.0, size=(4, 1, 1, 1)).astype(np.float32)
    img, lab, info = preprocess_case(image, seg, min_size=(24, 24, 24))
    brain_orig = (image != 0).any(0)
    # every brain voxel is inside the crop
    sl = tuple(slice(a, b) for a, b in zip(info.lo, info.hi))
    assert brain_orig[sl].sum() == brain_orig.sum()
    assert all(s >= 24 for s in img.shape[1:]) and img.shape[1:] == lab.shape
    brain = np.zeros(lab.shape, bool)
    pads = tuple(slice(b, s - a) for b, a, s in zip(info.pad_before, info.pad_after, lab.shape))
    brain[pads] = brain_orig[sl]
    for k in range(4):
        assert abs(img[k][brain].mean()) < 1e-4 and abs(img[k][brain].std() - 1) < 1e-4
        # background (incl. padding) gets -mean/std, as RFNet
        assert np.allclose(img[k][~brain], img[k][~brain][0])
    assert set(np.unique(lab)) == {0, 1, 2, 3}
    assert (lab == 3).sum() == (seg == 4).sum() and (lab == 1).sum() == (seg == 1).sum()


def test_constant_modality_is_an_error():
    image, seg = make_arrays()
    image[2][image[2] != 0] = 7.0
    with pytest.raises(DataError, match=r"^case X: channel 2 is constant over the brain \(all 7, std 0\)"):
        preprocess_case(image, seg, where="case X: ")


def _dataset(tmp_path, n=5):
    raw = tmp_path / "raw"
    ids = [f"BraTS20_Training_{i:03d}" for i in range(1, n + 1)]
    for i, c in enumerate(ids):
        write_case(raw, c, *make_arrays(seed=i))
    split_dir = tmp_path / "split"
    write_split(split_dir, {"train": ids[:3], "val": ids[3:4], "test": ids[4:]})
    return raw, split_dir, ids


def test_build_and_load_round_trip(tmp_path):
    raw, split_dir, ids = _dataset(tmp_path)
    out = tmp_path / "pre"
    manifest = build_preprocessed(raw, split_dir, out, min_size=(16, 16, 16), progress=False)
    assert sorted(manifest["case"]) == ids
    assert set(manifest["split"]) == {"train", "val", "test"}
    for c in ids:
        image, label = load_case(out, c)
        assert isinstance(image, np.memmap) and image.dtype == np.float32 and image.shape[0] == 4
        assert label.dtype == np.uint8 and label.shape == image.shape[1:] and label.max() <= 3
        row = manifest.set_index("case").loc[c]
        assert (row.x, row.y, row.z) == label.shape
        assert row.n_enhancing == (label == 3).sum() and row.spacing_x == 1.0
    assert (out / "split" / "test.txt").read_text().split() == ids[4:]


def test_split_naming_a_missing_case_is_an_error_and_keeps_previous_output(tmp_path):
    raw, split_dir, ids = _dataset(tmp_path)
    out = tmp_path / "pre"
    build_preprocessed(raw, split_dir, out, min_size=(0, 0, 0), progress=False)
    before = sorted(p.name for p in out.iterdir())
    write_split(split_dir, {"train": ids[:3] + ["BraTS20_Training_999"], "val": ids[3:4], "test": ids[4:]})
    with pytest.raises(DataError, match=r"train\.txt names 1 case\(s\) not found.*BraTS20_Training_999"):
        build_preprocessed(raw, split_dir, out, min_size=(0, 0, 0), progress=False)
    assert sorted(p.name for p in out.iterdir()) == before


def test_bad_case_leaves_no_partial_output(tmp_path):
    raw, split_dir, ids = _dataset(tmp_path)
    (raw / ids[2] / f"{ids[2]}_t1.nii.gz").write_bytes(b"\x1f\x8b garbage")
    out = tmp_path / "pre"
    with pytest.raises(DataError, match=rf"{ids[2]}.*{ids[2]}_t1\.nii\.gz"):
        build_preprocessed(raw, split_dir, out, min_size=(0, 0, 0), progress=False)
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_constant_modality_names_its_file(tmp_path):
    raw, split_dir, ids = _dataset(tmp_path)
    image, seg = make_arrays(seed=1)
    image[2][image[2] != 0] = 7.0
    write_case(raw, ids[1], image, seg)
    with pytest.raises(DataError, match=rf"^case {ids[1]}: {ids[1]}_t1\.nii\.gz is constant over the brain"):
        build_preprocessed(raw, split_dir, tmp_path / "pre", min_size=(0, 0, 0), progress=False)


def test_spacing_is_the_grid_all_files_share(tmp_path):
    raw, split_dir, ids = _dataset(tmp_path)
    write_case(raw, ids[0], *make_arrays(), affine=np.diag([1.2, 0.9, 2.0, 1.0]))
    manifest = build_preprocessed(raw, split_dir, tmp_path / "pre", min_size=(0, 0, 0), progress=False)
    row = manifest.set_index("case").loc[ids[0]]
    np.testing.assert_allclose([row.spacing_x, row.spacing_y, row.spacing_z], [1.2, 0.9, 2.0], rtol=1e-6)


def test_a_case_off_the_grid_stops_the_build(tmp_path):
    raw, split_dir, ids = _dataset(tmp_path)
    write_case(raw, ids[2], *make_arrays(), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    t1 = raw / ids[2] / f"{ids[2]}_t1.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(nib.load(str(t1)).dataobj), np.eye(4)), str(t1))
    with pytest.raises(DataError, match=rf"case {ids[2]}: {ids[2]}_t1\.nii\.gz has voxel size 1 x 1 x 1 mm but "
                                        rf"{ids[2]}_flair\.nii\.gz has 2 x 2 x 2 mm; expected every modality"):
        build_preprocessed(raw, split_dir, tmp_path / "pre", min_size=(0, 0, 0), progress=False)


@pytest.mark.parametrize("mistake, message", [
    ("no flair", r"missing flair file: expected {flair}\.nii\.gz or {flair}\.nii$"),
    ("FLAIR", r"missing flair file: expected {flair}\.nii\.gz or {flair}\.nii; found {case}_FLAIR\.nii\.gz, "
              r"which differs in letter case"),
    ("other prefix", r"missing flair file: expected {flair}\.nii\.gz or {flair}\.nii; found "
                     r"BraTS2020_Training_002_flair\.nii\.gz, whose prefix BraTS2020_Training_002 is not the folder "
                     r"name {case}"),
    ("folder renamed", r"no folder {folder}; found {raw}/case_two/{case}_flair\.nii\.gz: expected the case folder "
                       r"to be named after its files' prefix"),
])
def test_misnamed_files_name_what_was_looked_for_not_case_not_found(tmp_path, mistake, message):
    raw, split_dir, ids = _dataset(tmp_path)
    case, d = ids[1], raw / ids[1]
    if mistake == "no flair":
        (d / f"{case}_flair.nii.gz").unlink()
    elif mistake == "FLAIR":
        (d / f"{case}_flair.nii.gz").rename(d / f"{case}_FLAIR.nii.gz")
    elif mistake == "other prefix":
        for f in d.iterdir():
            f.rename(d / f.name.replace("BraTS20_", "BraTS2020_"))
    else:
        d.rename(raw / "case_two")
    flair = re.escape(str(d / f"{case}_flair"))
    expected = message.format(case=case, flair=flair, folder=re.escape(str(d)), raw=re.escape(str(raw)))
    with pytest.raises(DataError, match=rf"^case {case}: {expected}") as info:
        build_preprocessed(raw, split_dir, tmp_path / "pre", min_size=(0, 0, 0), progress=False)
    assert "not found" not in str(info.value)


def test_load_case_missing(tmp_path):
    with pytest.raises(DataError, match="BraTS20_Training_001: preprocessed file .* is missing"):
        load_case(tmp_path, "BraTS20_Training_001")
