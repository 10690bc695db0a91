"""The WMH challenge reader on tiny synthetic volumes in the challenge layout, the subject-disjoint split, and the
WMH phantom read back through that reader."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dcseg.data.errors import DataError
from dcseg.data.wmh import (format_subjects, list_scans, read_scan, read_subjects, scan_subjects,
                            subject_disjoint_split)
from dcseg.data.wmh_phantom import WmhPhantomConfig, generate, lesion_labels, make_scan, make_subject, summarise

ANISOTROPIC = np.diag([0.96, 0.96, 3.0, 1.0])


def _write(root: Path, site: str, subject: str, flair=None, t1=None, labels=None, affine=ANISOTROPIC,
           label_dtype=np.float32, suffix=".nii.gz") -> Path:
    shape = (6, 5, 4)
    rng = np.random.default_rng(0)
    flair = rng.uniform(10, 100, shape) if flair is None else flair
    t1 = rng.uniform(10, 100, shape) if t1 is None else t1
    if labels is None:
        labels = np.zeros(shape)
        labels[2:4, 2, 1] = 1
        labels[0, 0, 0] = 2
    folder = root / site / subject
    (folder / "pre").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(flair, np.float32), affine), str(folder / "pre" / f"FLAIR{suffix}"))
    nib.save(nib.Nifti1Image(np.asarray(t1, np.float32), affine), str(folder / "pre" / f"T1{suffix}"))
    nib.save(nib.Nifti1Image(np.asarray(labels).astype(label_dtype), affine), str(folder / f"wmh{suffix}"))
    return folder


def test_reads_a_challenge_scan_keeping_label_2_and_its_anisotropic_grid(tmp_path):
    folder = _write(tmp_path, "Utrecht", "0")
    image, labels, affine = read_scan(folder)
    assert image.shape == (2, 6, 5, 4) and image.dtype == np.float32
    assert labels.dtype == np.uint8 and sorted(np.unique(labels).tolist()) == [0, 1, 2]
    assert np.allclose(nib.affines.voxel_sizes(affine), (0.96, 0.96, 3.0))
    flair = nib.load(str(folder / "pre/FLAIR.nii.gz")).get_fdata()
    assert np.allclose(image[0], flair)  # channel 0 is FLAIR, 1 is T1
    # integer labels, plain .nii, and a scanner level below the site (the public release's Amsterdam/GE3T/<id>)
    _write(tmp_path / "Amsterdam", "GE3T", "100", label_dtype=np.uint8, suffix=".nii")
    scans = list_scans(tmp_path)
    assert list(scans) == ["Amsterdam_GE3T_100", "Utrecht_0"]
    assert read_scan(scans["Amsterdam_GE3T_100"])[1].max() == 2


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "pre/T1.nii.gz").unlink(), "scan Utrecht_0: missing pre/T1 file"),
    (lambda f: _write(f.parent.parent, "Utrecht", "0", labels=np.full((6, 5, 4), 3)),
     r"wmh.nii.gz: label values \[3(\.0)?\] outside \{0, 1, 2\}"),
    (lambda f: _write(f.parent.parent, "Utrecht", "0", labels=np.full((6, 5, 4), 0.5)), "non-integral label values"),
    (lambda f: _write(f.parent.parent, "Utrecht", "0", flair=np.zeros((6, 5, 4))), "is zero everywhere"),
    (lambda f: _write(f.parent.parent, "Utrecht", "0", t1=np.full((6, 5, 4), np.nan)), "NaN/inf voxels"),
    (lambda f: nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), np.diag([1.0, 1.0, 3.0, 1.0])),
                        str(f / "pre/T1.nii.gz")), "voxel size 1 x 1 x 3 mm but pre/FLAIR.nii.gz has 0.96"),
    (lambda f: nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), ANISOTROPIC), str(f / "wmh.nii")),
     "ambiguous wmh file"),
    (lambda f: (f / "pre/FLAIR.nii.gz").write_bytes(b"not a nifti"), "cannot read FLAIR.nii.gz"),
])
def test_bad_input_fails_naming_the_scan_and_file(tmp_path, damage, message):
    folder = _write(tmp_path, "Utrecht", "0")
    damage(folder)
    with pytest.raises(DataError, match=message):
        read_scan(folder)


def test_listing_refuses_a_missing_or_empty_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_scans(tmp_path / "nowhere")
    (tmp_path / "Utrecht" / "0").mkdir(parents=True)  # no pre/ and no wmh file: not a scan
    with pytest.raises(DataError, match="site folder .*Utrecht holds no scan folders"):
        list_scans(tmp_path)


def test_subject_disjoint_split_and_the_subjects_file_round_trip(tmp_path):
    subjects = {f"Phantom_{s:03d}_t{t}": f"Phantom_{s:03d}" for s in range(24) for t in range(2)}
    split = subject_disjoint_split(subjects, seed=7)
    sides = {name: {subjects[scan] for scan in scans} for name, scans in split.items()}
    assert [len(sides[n]) for n in ("train", "val", "test")] == [15, 3, 6]  # proportions 26 : 5 : 10
    assert not (sides["train"] & sides["test"]) and not (sides["train"] & sides["val"]) and not (
        sides["val"] & sides["test"])
    assert sorted(sum(split.values(), [])) == sorted(subjects)  # every scan once, both of a subject's scans together
    assert subject_disjoint_split(subjects, seed=7) == split != subject_disjoint_split(subjects, seed=8)
    path = tmp_path / "subjects.csv"
    path.write_text(format_subjects(subjects))
    assert read_subjects(path) == subjects
    path.write_text("scan,subject\nA,1\nA,2\n")
    with pytest.raises(DataError, match="line 3: scan A listed twice"):
        read_subjects(path)


def test_scan_subjects_one_per_scan_or_from_the_datas_map_which_must_match_the_scans(tmp_path):
    for subject in ("0", "1"):
        _write(tmp_path, "Utrecht", subject)
    assert scan_subjects(tmp_path) == {"Utrecht_0": "Utrecht_0", "Utrecht_1": "Utrecht_1"}  # the challenge: one each
    (tmp_path / "subjects.csv").write_text(format_subjects({"Utrecht_0": "A", "Utrecht_1": "A"}))
    assert scan_subjects(tmp_path) == {"Utrecht_0": "A", "Utrecht_1": "A"}
    (tmp_path / "subjects.csv").write_text(format_subjects({"Utrecht_0": "A"}))
    with pytest.raises(DataError, match=r"subjects.csv does not match the scans .*without a subject \['Utrecht_1'\]"):
        scan_subjects(tmp_path)


SMALL = WmhPhantomConfig(n_subjects=2, voxel_size=(3.0, 3.0, 4.0), lesion_load=(1.2, 1.5),
                         other_pathology_fraction=1.0)


def test_phantom_in_the_challenge_layout_reads_back_with_the_reader(tmp_path):
    stats = generate(SMALL, tmp_path / "wmh", progress=False)
    scans = list_scans(tmp_path / "wmh")
    assert list(scans) == ["Phantom_000_t0", "Phantom_000_t1", "Phantom_001_t0", "Phantom_001_t1"]
    image, labels, affine = read_scan(scans["Phantom_001_t1"])
    assert image.shape[0] == 2 and np.allclose(nib.affines.voxel_sizes(affine), (3.0, 3.0, 4.0))
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    summary = summarise(stats)
    assert summary["scans"] == 4 and summary["subjects"] == 2 and summary["with_other_pathology"] >= 2
    # the split keeps a subject's two time points together: the phantom says which scans are one subject's
    assert scan_subjects(tmp_path / "wmh") == {scan: scan[:-3] for scan in scans}
    assert 0.5 < summary["wmh_ml"]["min"] <= summary["wmh_ml"]["max"] < 200


def test_phantom_contrast_deterministic_and_two_time_points():
    subject = make_subject(SMALL, 0)
    first, again = make_scan(SMALL, subject, 0, 0), make_scan(SMALL, make_subject(SMALL, 0), 0, 0)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.labels, again.labels)
    flair, t1 = first.image.astype(float)
    wmh, white = first.labels == 1, subject.tissue["wm"] > 0.9
    white &= ~wmh
    # bright in FLAIR, only faintly dark in T1 (less than the FLAIR step, and above grey matter)
    assert flair[wmh].mean() > 1.25 * flair[white].mean()
    grey = (subject.tissue["gm"] > 0.8) & ~wmh
    assert t1[grey].mean() < t1[wmh].mean() < t1[white].mean()
    second = make_scan(SMALL, subject, 0, 1)
    assert second.image.shape == first.image.shape and not np.array_equal(second.image, first.image)
    # the lesions grow between the time points (measured on the first scan's grid, before repositioning)
    assert (lesion_labels(SMALL, subject, 1) == 1).sum() > (lesion_labels(SMALL, subject, 0) == 1).sum()
