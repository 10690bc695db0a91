import gzip
import re

import nibabel as nib
import numpy as np
import pytest

from dcseg.data import DataError, read_case
from dcseg.data.brats import MODALITIES, check_case_folders, list_cases

from .conftest import make_arrays, write_case


def test_modalities_order_is_the_reference_channel_order():
    assert MODALITIES == ("flair", "t1ce", "t1", "t2")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_round_trip_any_dtype_and_suffix(tmp_path, suffix, dtype):
    image, seg = make_arrays()
    affine = np.array([[-1.0, 0, 0, 10], [0, -1.0, 0, 239], [0, 0, 1.0, -5], [0, 0, 0, 1]])
    d = write_case(tmp_path, "BraTS20_Training_001", image, seg, affine, suffix=suffix, dtype=dtype,
                   seg_dtype=np.float64 if dtype == np.float64 else np.uint8)
    img, s, aff = read_case(d)
    assert img.dtype == np.float32 and img.shape == (4,) + seg.shape
    assert s.dtype == np.uint8 and set(np.unique(s)) == {0, 1, 2, 4}
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(s, seg)
    np.testing.assert_allclose(aff, affine)


def test_channels_follow_modalities_order(tmp_path):
    image, seg = make_arrays()
    for k in range(4):
        image[k][image[k] > 0] = 100 * (k + 1)
    img, _, _ = read_case(write_case(tmp_path, "BraTS20_Training_002", image, seg))
    for k in range(4):
        assert img[k].max() == 100 * (k + 1), MODALITIES[k]


def test_case_355_seg_quirk(tmp_path):
    image, seg = make_arrays()
    d = write_case(tmp_path, "BraTS20_Training_355", image, seg, suffix=".nii", seg_name="W39_1998.09.19_Segm.nii")
    _, s, _ = read_case(d)
    np.testing.assert_array_equal(s, seg)


def test_quirk_name_only_for_case_355(tmp_path):
    image, seg = make_arrays()
    d = write_case(tmp_path, "BraTS20_Training_354", image, seg, suffix=".nii", seg_name="W39_1998.09.19_Segm.nii")
    with pytest.raises(DataError, match=r"BraTS20_Training_354.*missing seg.*BraTS20_Training_354_seg\.nii\.gz"):
        read_case(d)


@pytest.mark.parametrize("missing", list(MODALITIES) + ["seg"])
def test_missing_file_names_the_paths_looked_for(brats_case, missing):
    d, _, _ = brats_case
    (d / f"{d.name}_{missing}.nii.gz").unlink()
    looked_for = re.escape(f"{d / d.name}_{missing}.nii.gz or {d / d.name}_{missing}.nii")
    with pytest.raises(DataError, match=rf"^case {d.name}: missing {missing} file: expected {looked_for}$"):
        read_case(d)


@pytest.mark.parametrize("name", ["BraTS20_Training_007_FLAIR.nii.gz", "brats20_training_007_flair.nii",
                                  "BraTS20_Training_007_flair.NII.GZ"])
def test_missing_file_names_a_near_miss_in_another_letter_case(brats_case, name):
    d, _, _ = brats_case
    (d / f"{d.name}_flair.nii.gz").rename(d / name)
    with pytest.raises(DataError, match=rf"missing flair file: expected {re.escape(str(d / d.name))}_flair\.nii\.gz "
                                        rf".*; found {re.escape(name)}, which differs in letter case"):
        read_case(d)


def test_missing_file_names_files_of_another_prefix(tmp_path):
    image, seg = make_arrays()
    d = write_case(tmp_path, "BraTS2020_Training_001", image, seg).rename(tmp_path / "BraTS20_Training_001")
    with pytest.raises(DataError, match=r"case BraTS20_Training_001: missing flair file: expected .*; found "
                                        r"BraTS2020_Training_001_flair\.nii\.gz, whose prefix "
                                        r"BraTS2020_Training_001 is not the folder name BraTS20_Training_001"):
        read_case(d)


def test_case_folder_named_unlike_its_files_is_named(tmp_path):
    image, seg = make_arrays()
    write_case(tmp_path, "BraTS20_Training_001", image, seg).rename(tmp_path / "case_one")
    write_case(tmp_path, "BraTS20_Training_002", image, seg)
    flair = re.escape(str(tmp_path / "case_one" / "BraTS20_Training_001_flair.nii.gz"))
    with pytest.raises(DataError, match=rf"case BraTS20_Training_001: no folder {re.escape(str(tmp_path))}/"
                                        rf"BraTS20_Training_001; found {flair}: expected the case folder"):
        check_case_folders(tmp_path, ["BraTS20_Training_001", "BraTS20_Training_002"])
    check_case_folders(tmp_path, ["BraTS20_Training_002", "BraTS20_Training_003"])  # absent: for the split check


ONE_GRID = "expected every modality and the labels of a case on one grid"


@pytest.mark.parametrize("kind, affine, difference", [
    ("t1", np.diag([2.0, 2.0, 2.0, 1.0]), "voxel size 2 x 2 x 2 mm but {case}_flair.nii.gz has 1 x 1 x 1 mm"),
    ("seg", np.array([[-1.0, 0, 0, 11], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     "orientation LAS but {case}_flair.nii.gz has RAS"),  # a flipped seg, even one mapping to the same space
    ("t2", np.array([[1.0, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     "origin (0.5, 0, 0) mm but {case}_flair.nii.gz has (0, 0, 0) mm"),
])
def test_files_of_a_case_must_share_the_affine(brats_case, kind, affine, difference):
    d, image, seg = brats_case
    data = seg if kind == "seg" else image[MODALITIES.index(kind)].astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine), str(d / f"{d.name}_{kind}.nii.gz"))
    message = f"case {d.name}: {d.name}_{kind}.nii.gz has {difference.format(case=d.name)}; {ONE_GRID}"
    with pytest.raises(DataError, match="^" + re.escape(message) + r" \(affines equal within 0\.001 mm\)$"):
        read_case(d)


def test_an_oblique_affine_is_reported_whole(brats_case):
    d, image, _ = brats_case
    c, s = np.cos(0.01), np.sin(0.01)  # a 0.6 degree rotation: same voxel size, same axis codes
    rotated = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(image[1].astype(np.int16), rotated), str(d / f"{d.name}_t1ce.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_t1ce\.nii\.gz has affine \[\[0\.9999, -0\.01, .* but "
                                        rf"{d.name}_flair\.nii\.gz has \[\[1\.0, 0\.0, "):
        read_case(d)


def test_affines_equal_within_the_tolerance_are_one_grid(tmp_path):
    """NIfTI stores affines in float32: the same grid written by another tool may differ by ~1e-5 mm."""
    image, seg = make_arrays()
    affine = np.array([[-1.0, 0, 0, 10], [0, -1.0, 0, 239], [0, 0, 1.0, -5], [0, 0, 0, 1]])
    d = write_case(tmp_path, "BraTS20_Training_001", image, seg, affine)
    nudged = affine + np.array([[0, 0, 0, 4e-4], [0, 2e-4, 0, -5e-4], [0, 0, 0, 0], [0, 0, 0, 0]])
    nib.save(nib.Nifti1Image(seg, nudged), str(d / f"{d.name}_seg.nii.gz"))
    _, s, aff = read_case(d)
    np.testing.assert_array_equal(s, seg)
    np.testing.assert_allclose(aff, affine)  # the first modality's


def test_truncated_file(brats_case):
    d, _, _ = brats_case
    path = d / f"{d.name}_t1ce.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{d.name}.*cannot read {d.name}_t1ce\.nii\.gz"):
        read_case(d)


def test_unreadable_file(brats_case):
    d, _, _ = brats_case
    (d / f"{d.name}_t2.nii.gz").write_bytes(gzip.compress(b"not a nifti at all" * 10))
    with pytest.raises(DataError, match=rf"cannot read {d.name}_t2\.nii\.gz"):
        read_case(d)


def test_shape_mismatch(brats_case):
    d, image, _ = brats_case
    nib.save(nib.Nifti1Image(image[2, :-1].astype(np.int16), np.eye(4)), str(d / f"{d.name}_t1.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_t1\.nii\.gz has shape \(11, 14, 10\) but {d.name}_flair\.nii\.gz "
                                        rf"has \(12, 14, 10\); {ONE_GRID}$"):
        read_case(d)


def test_seg_shape_mismatch(brats_case):
    d, _, seg = brats_case
    nib.save(nib.Nifti1Image(seg[:, :-2], np.eye(4)), str(d / f"{d.name}_seg.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_seg\.nii\.gz has shape \(12, 12, 10\) but .*; {ONE_GRID}$"):
        read_case(d)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels(brats_case, bad):
    d, image, _ = brats_case
    flair = image[0].copy()
    flair[3, 4, 5] = bad
    nib.save(nib.Nifti1Image(flair, np.eye(4)), str(d / f"{d.name}_flair.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_flair\.nii\.gz has 1 NaN/inf voxels"):
        read_case(d)


def test_label_outside_brats_set(brats_case):
    d, _, seg = brats_case
    seg = seg.copy()
    seg[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(d / f"{d.name}_seg.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_seg\.nii\.gz: label values \[3\] outside"):
        read_case(d)


def test_non_integral_label(brats_case):
    d, _, seg = brats_case
    seg = seg.astype(np.float32)
    seg[0, 0, 0] = 1.5
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(d / f"{d.name}_seg.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_seg\.nii\.gz: non-integral label values \[1\.5\]"):
        read_case(d)


def test_all_zero_brain(tmp_path):
    image, seg = make_arrays()
    d = write_case(tmp_path, "BraTS20_Training_009", np.zeros_like(image), np.zeros_like(seg))
    with pytest.raises(DataError, match=r"BraTS20_Training_009: all four modalities are zero"):
        read_case(d)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


def test_list_cases_sorted_and_errors(tmp_path):
    image, seg = make_arrays()
    for c in ("BraTS20_Training_010", "BraTS20_Training_002"):
        write_case(tmp_path, c, image, seg)
    (tmp_path / "not_a_case").mkdir()
    assert list_cases(tmp_path) == ["BraTS20_Training_002", "BraTS20_Training_010"]
    with pytest.raises(DataError, match="does not exist"):
        list_cases(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no BraTS case folders"):
        list_cases(tmp_path / "not_a_case")


def test_list_cases_keeps_folders_with_misnamed_files(tmp_path):
    """So that reading them names the file looked for, instead of the case being 'not found'."""
    image, seg = make_arrays()
    d = write_case(tmp_path, "BraTS20_Training_001", image, seg)
    (d / f"{d.name}_flair.nii.gz").rename(d / f"{d.name}_FLAIR.nii.gz")
    write_case(tmp_path, ".BraTS20_Training_002.tmp1", image, seg)  # a generator's temp folder is not a case
    assert list_cases(tmp_path) == ["BraTS20_Training_001"]
