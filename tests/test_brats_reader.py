import gzip

import nibabel as nib
import numpy as np
import pytest

from dcseg.data import DataError, read_case
from dcseg.data.brats import MODALITIES, list_cases

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
def test_missing_file_names_case_and_file(brats_case, missing):
    d, _, _ = brats_case
    (d / f"{d.name}_{missing}.nii.gz").unlink()
    with pytest.raises(DataError, match=rf"case {d.name}: missing {missing} file: expected {d.name}_{missing}\.nii\.gz"):
        read_case(d)


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
    with pytest.raises(DataError, match=rf"{d.name}_t1\.nii\.gz has shape \(11, 14, 10\).*{d.name}_flair"):
        read_case(d)


def test_seg_shape_mismatch(brats_case):
    d, _, seg = brats_case
    nib.save(nib.Nifti1Image(seg[:, :-2], np.eye(4)), str(d / f"{d.name}_seg.nii.gz"))
    with pytest.raises(DataError, match=rf"{d.name}_seg\.nii\.gz has shape"):
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
