"""White-matter-hyperintensity phantom: the embedded stand-in for the paper's private SAHZU-WMH data (Table 3).

Anatomy: the MNI152 template and tissue maps of ``dcseg.data.phantom`` (read at 1 mm), deformed per subject by a
small random affine and a smooth elastic field, and sampled straight onto the output grid. Lesions (label 1), in
white matter only:

- periventricular: a band along the lateral ventricles (deep CSF) whose thickness grows towards the anterior and
  posterior horns (the "caps"), with an irregular edge (smooth noise on the distance threshold);
- deep punctate: small balls (radius in mm) in deep white matter away from the ventricles;
- all scaled by one lesion load per subject, drawn log-uniformly (measured at the defaults, first time point of
  subjects 0-9: 1.9, 2.1, 2.7, 5.4, 11.1, 11.3, 28.6, 29.1, 35.7, 46.0 ml; ``summarise`` gives the quartiles of a
  generated set).

Some subjects also get one "other pathology" region (label 2, a lacune-like cavity: dark in FLAIR and T1), which the
losses and the scoring ignore, as in the challenge. Contrast: WMH are bright in FLAIR (above grey matter) and only
faintly dark in T1 (between white and grey matter), so T1 alone is hard, as in the paper.

Two time points per subject: the second scan sees the same anatomy, its lesions a little larger (``growth``) and a
few new punctate ones, repositioned in the scanner by a small rigid motion, with its own bias field, noise and gain.

Grid: 2 x 2 mm in-plane, 3 mm slices (``voxel_size``). 3 mm is the challenge's slice thickness (so the reader and
the metrics see anisotropic data as on real scans); 2 mm in-plane keeps the smallest punctate lesions (3 mm across)
at one to four voxels per slice, where 4 mm would erase them, and keeps the CPU budget (a volume of ~0.6 M voxels).

Written in the WMH challenge layout (``dcseg.data.wmh``): ``<root>/Phantom/<NNN>_t<k>/pre/{FLAIR,T1}.nii.gz`` and
``wmh.nii.gz`` (float32 labels: the organisers' script selects labels with thresholds that ITK casts to the file's
pixel type, which only works for a float type; docs/wmh.md). Deterministic: scan (subject, k) depends only on
(seed, subject, k) and the params.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from dcseg.data.phantom import TISSUE_CONTRAST, _rotation, load_atlas, smooth_noise
from dcseg.data.wmh import SUBJECTS_FILE, WMH_MODALITIES, format_subjects, scan_id
from dcseg.io import atomic_dir, map_cases
from dcseg.wmh_metrics import FULLY_CONNECTED
from dcseg.validate import (dataclass_from, fail, fraction, half_open_fraction, non_negative, non_negative_int,
                            positive, positive_int, range_pair)

SITE = "Phantom"
TIME_POINTS = 2

# Relative intensities (white matter in T1 = 1) of what the BraTS phantom does not have.
LESION_CONTRAST = {
    "wmh": {"flair": 1.00, "t1": 0.90},    # FLAIR: WM 0.55, GM 0.70; T1: WM 1.00, GM 0.70
    "other": {"flair": 0.20, "t1": 0.30},  # a cavity, CSF-like
}


def _param(default, check):
    return field(default=default, metadata={"check": check})


def _voxel_size(key: str, value) -> tuple[float, float, float]:
    if not (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3):
        fail(key, value, "[x, y, z] voxel edge lengths in mm")
    return tuple(float(positive(f"{key}[{i}]", v)) for i, v in enumerate(value))


_MM_RANGE = functools.partial(range_pair, element=positive)
_FRACTIONS = functools.partial(range_pair, element=non_negative)


@dataclass(frozen=True)
class WmhPhantomConfig:
    """WMH phantom parameters (``wmh/params.yaml`` ``phantom``). Lengths in mm; pairs are ``[low, high]`` ranges."""

    n_subjects: int = _param(24, positive_int)
    seed: int = _param(2017, non_negative_int)
    voxel_size: tuple[float, float, float] = _param((2.0, 2.0, 3.0), _voxel_size)
    margin: float = _param(8.0, non_negative)
    max_rotation_deg: float = _param(6.0, non_negative)
    max_scale: float = _param(0.07, half_open_fraction)
    max_translation: float = _param(4.0, non_negative)
    elastic_amplitude: float = _param(3.0, non_negative)
    elastic_smoothness: float = _param(12.0, non_negative)
    lesion_load: tuple[float, float] = _param((0.6, 1.8), _MM_RANGE)  # log-uniform per subject; scales every term
    band: float = _param(2.0, non_negative)          # periventricular band thickness at load 1
    cap: float = _param(5.0, non_negative)           # extra thickness at the horns at load 1
    punctate_count: float = _param(6.0, non_negative)  # mean number of deep punctate lesions at load 1
    punctate_radius: tuple[float, float] = _param((1.5, 3.5), _MM_RANGE)
    growth: tuple[float, float] = _param((0.1, 0.3), _FRACTIONS)  # relative growth from one time point to the next
    new_lesions: float = _param(1.0, non_negative)    # mean number of new punctate lesions per later time point
    other_pathology_fraction: float = _param(0.3, fraction)
    contrast_jitter: float = _param(0.06, half_open_fraction)
    bias_field: float = _param(0.15, non_negative)
    noise: float = _param(0.03, non_negative)
    repositioning_deg: float = _param(2.0, non_negative)  # rigid motion between a subject's scans
    repositioning_mm: float = _param(2.0, non_negative)

    @classmethod
    def from_dict(cls, d, key: str = "phantom") -> "WmhPhantomConfig":
        return dataclass_from(cls, d, key)


def subject_id(subject: int) -> str:
    return f"{SITE}_{subject:03d}"


def scan_folder(subject: int, time_point: int) -> str:
    return f"{subject:03d}_t{time_point}"


def phantom_scan_id(subject: int, time_point: int) -> str:
    return scan_id(SITE, scan_folder(subject, time_point))


# ------------------------------------------------------------------------------------------- subject


@dataclass
class Subject:
    """A subject's anatomy and lesion layout on its first scan's grid (spacing ``voxel_size``)."""

    tissue: dict[str, np.ndarray]    # brain, gm, wm, csf fractions; t1 template texture
    ventricle_distance: np.ndarray   # mm from the lateral ventricles
    pole: np.ndarray                 # 0 at the ventricles' middle, 1 at their anterior / posterior ends
    band_noise: np.ndarray           # smooth noise on the band's edge
    punctate: list[tuple[np.ndarray, float]]  # (centre in mm, radius in mm)
    later_punctate: list[list[tuple[np.ndarray, float]]]  # new lesions per later time point
    growth: list[float]              # per later time point, cumulative
    other: tuple[np.ndarray, float] | None
    load: float
    affine: np.ndarray


def _grid_mm(shape, voxel_size) -> np.ndarray:
    axes = [np.arange(n, dtype=np.float32) * s for n, s in zip(shape, voxel_size)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def make_subject(cfg: WmhPhantomConfig, subject: int) -> Subject:
    rng = np.random.default_rng([cfg.seed, subject])
    atlas = load_atlas(1.0, cfg.margin)  # 1 mm: sampled straight onto the (anisotropic) output grid
    vs = np.asarray(cfg.voxel_size, np.float32)
    shape = tuple(int(np.ceil(n / v)) for n, v in zip(atlas.brain.shape, vs))
    grid = _grid_mm(shape, vs)
    centre = (np.array(shape, np.float32) - 1) * vs / 2
    atlas_centre = (np.array(atlas.brain.shape, np.float32) - 1) / 2

    lin = _rotation(rng, cfg.max_rotation_deg) @ np.diag(rng.uniform(1 - cfg.max_scale, 1 + cfg.max_scale, 3))
    shift = rng.uniform(-cfg.max_translation, cfg.max_translation, 3)
    elastic = np.stack([smooth_noise(rng, shape, cfg.elastic_smoothness / float(vs.mean())) for _ in range(3)])
    src = np.einsum("ij,j...->i...", lin.astype(np.float32), grid - centre[:, None, None, None])
    src += (atlas_centre + shift).astype(np.float32)[:, None, None, None] + cfg.elastic_amplitude * elastic

    def warp(volume):
        return ndimage.map_coordinates(volume, src, order=1, mode="constant", cval=0.0).astype(np.float32)

    brain, gm, wm, t1 = warp(atlas.brain), warp(atlas.gm), warp(atlas.wm), warp(atlas.t1)
    gm, wm = np.minimum(gm, brain), np.minimum(wm, brain)
    csf = np.clip(brain - gm - wm, 0, 1)
    depth = ndimage.distance_transform_edt(brain > 0.5, sampling=vs)
    ventricles = (csf > 0.5) & (depth > 15.0)
    if not ventricles.any():
        ventricles = (csf > 0.3) & (depth > np.percentile(depth[brain > 0.5], 80))
    ventricle_distance = ndimage.distance_transform_edt(~ventricles, sampling=vs).astype(np.float32)
    y = grid[1][ventricles]
    middle, half = (y.min() + y.max()) / 2, max((y.max() - y.min()) / 2, 1.0)
    pole = np.clip(np.abs(grid[1] - middle) / half, 0, 1.3).astype(np.float32)

    load = float(np.exp(rng.uniform(*np.log(cfg.lesion_load))))
    band_noise = smooth_noise(rng, shape, 4.0 / float(vs.mean()))
    deep = np.argwhere((wm > 0.8) & (ventricle_distance > 8.0) & (depth > 10.0))

    def punctate(count: float) -> list[tuple[np.ndarray, float]]:
        n = int(rng.poisson(count)) if len(deep) else 0
        picks = deep[rng.integers(len(deep), size=n)] if n else np.zeros((0, 3), int)
        return [(p * vs, float(rng.uniform(*cfg.punctate_radius))) for p in picks]

    lesions = punctate(cfg.punctate_count * load)
    later = [punctate(cfg.new_lesions) for _ in range(TIME_POINTS - 1)]
    growth = list(np.cumsum(rng.uniform(*cfg.growth, size=TIME_POINTS - 1)))
    other = None
    if rng.uniform() < cfg.other_pathology_fraction:
        near = np.argwhere((ventricle_distance > 6.0) & (ventricle_distance < 20.0) & (brain > 0.9) & (depth > 15.0))
        if len(near):
            other = (near[rng.integers(len(near))] * vs, float(rng.uniform(3.0, 6.0)))
    affine = atlas.affine @ np.diag(list(vs) + [1.0])  # output voxel -> atlas 1 mm voxel -> world mm
    tissue = {"brain": brain, "gm": gm, "wm": wm, "csf": csf, "t1": t1}
    return Subject(tissue, ventricle_distance, pole, band_noise, lesions, later, growth, other, load, affine)


def _ball(grid: np.ndarray, centre: np.ndarray, radius: float, voxel_size) -> np.ndarray:
    inside = ((grid - centre.astype(np.float32)[:, None, None, None]) ** 2).sum(0) <= radius ** 2
    inside[tuple(np.round(centre / np.asarray(voxel_size)).astype(int))] = True  # never smaller than one voxel
    return inside


def lesion_labels(cfg: WmhPhantomConfig, s: Subject, time_point: int) -> np.ndarray:
    """uint8 labels (0, 1 WMH, 2 other pathology) of the subject at ``time_point`` on the first scan's grid."""
    grow = 1.0 + (s.growth[time_point - 1] if time_point else 0.0)
    shape = s.ventricle_distance.shape
    grid = _grid_mm(shape, cfg.voxel_size)
    thickness = s.load * grow * (cfg.band + cfg.cap * s.pole ** 4) * (1 + 0.35 * s.band_noise)
    wmh = (s.ventricle_distance > 0) & (s.ventricle_distance < thickness) & (s.tissue["wm"] > 0.4)
    punctate = list(s.punctate) + [p for later in s.later_punctate[:time_point] for p in later]
    for centre, radius in punctate:
        wmh |= _ball(grid, centre, radius * grow ** 0.5, cfg.voxel_size) & (s.tissue["wm"] > 0.3)
    labels = wmh.astype(np.uint8)
    if s.other is not None:
        labels[_ball(grid, s.other[0], s.other[1], cfg.voxel_size) & (s.tissue["brain"] > 0.5)] = 2
    return labels


def _reposition(rng: np.random.Generator, cfg: WmhPhantomConfig, shape) -> np.ndarray | None:
    """Sampling coordinates (first-scan voxels) of a later scan: a small rigid motion about the centre."""
    vs = np.asarray(cfg.voxel_size, np.float32)
    rotation = _rotation(rng, cfg.repositioning_deg).astype(np.float32)
    shift = rng.uniform(-cfg.repositioning_mm, cfg.repositioning_mm, 3).astype(np.float32)
    grid = _grid_mm(shape, vs)
    centre = ((np.array(shape, np.float32) - 1) * vs / 2)[:, None, None, None]
    mm = np.einsum("ij,j...->i...", rotation, grid - centre) + centre + shift[:, None, None, None]
    return mm / vs[:, None, None, None]


@dataclass
class WmhScan:
    image: np.ndarray   # [2, X, Y, Z] int16 in WMH_MODALITIES order
    labels: np.ndarray  # [X, Y, Z] uint8 {0, 1, 2}
    affine: np.ndarray


def make_scan(cfg: WmhPhantomConfig, subject: Subject, subject_index: int, time_point: int) -> WmhScan:
    rng = np.random.default_rng([cfg.seed, subject_index, 1000 + time_point])
    labels = lesion_labels(cfg, subject, time_point)
    tissue = dict(subject.tissue)
    masks = {"wmh": (labels == 1).astype(np.float32), "other": (labels == 2).astype(np.float32)}
    if time_point:
        coords = _reposition(rng, cfg, labels.shape)
        tissue = {k: ndimage.map_coordinates(v, coords, order=1, mode="constant") for k, v in tissue.items()}
        masks = {k: ndimage.map_coordinates(v, coords, order=1, mode="constant") for k, v in masks.items()}
        labels = np.where(masks["other"] >= 0.5, 2, masks["wmh"] >= 0.5).astype(np.uint8)
        masks = {k: (labels == v).astype(np.float32) for k, v in (("wmh", 1), ("other", 2))}
    shape = labels.shape
    vs = float(np.mean(cfg.voxel_size))
    soft = {k: np.clip(ndimage.gaussian_filter(m, 0.6), 0, 1) for k, m in masks.items()}
    lesion_total = np.clip(soft["wmh"] + soft["other"], 0, 1)
    brain, gm, wm, csf = tissue["brain"], tissue["gm"], tissue["wm"], tissue["csf"]
    normal_total = np.maximum(gm + wm + csf, 1e-6)
    healthy = {"wm": wm / normal_total, "gm": gm / normal_total, "csf": csf / normal_total}
    inside = (brain > 0.5) | (labels > 0)
    white = wm > 0.9
    t1_rel = tissue["t1"] / max(float(np.percentile(tissue["t1"][white], 50)) if white.any() else 1.0, 1e-6)
    image = np.zeros((len(WMH_MODALITIES),) + shape, np.int16)
    for k, modality in enumerate(WMH_MODALITIES):
        mean = {t: TISSUE_CONTRAST[t][modality] * rng.uniform(1 - cfg.contrast_jitter, 1 + cfg.contrast_jitter)
                for t in healthy}
        lesion = {t: LESION_CONTRAST[t][modality] * rng.uniform(1 - cfg.contrast_jitter, 1 + cfg.contrast_jitter)
                  for t in LESION_CONTRAST}
        normal = sum(healthy[t] * mean[t] for t in healthy)
        if modality == "t1":
            normal = 0.5 * normal + 0.5 * t1_rel  # the template's own T1 texture
        signal = (1 - lesion_total) * normal + sum(soft[t] * lesion[t] for t in soft)
        signal *= np.exp(cfg.bias_field * smooth_noise(rng, shape, 40.0 / vs))
        sigma = cfg.noise
        signal = np.sqrt((signal + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2)
        image[k] = np.where(inside, np.round(signal * rng.uniform(300, 900)), 0).astype(np.int16)
    return WmhScan(image, labels, subject.affine)


def write_scan(scan: WmhScan, site_dir: Path, folder: str) -> Path:
    """One scan in the challenge layout under ``site_dir/folder`` (complete files only: temp dir + rename)."""
    final = site_dir / folder
    tmp = site_dir / f".{folder}.tmp{os.getpid()}"
    (tmp / "pre").mkdir(parents=True, exist_ok=False)
    for k, name in enumerate(("FLAIR", "T1")):
        nib.save(nib.Nifti1Image(scan.image[k], scan.affine), str(tmp / "pre" / f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(scan.labels.astype(np.float32), scan.affine), str(tmp / "wmh.nii.gz"))
    os.replace(tmp, final)
    return final


def _generate_subject(args) -> list[dict]:
    cfg, index, out_dir = args
    subject = make_subject(cfg, index)
    voxel_ml = float(np.prod(cfg.voxel_size)) / 1000.0
    rows = []
    for time_point in range(TIME_POINTS):
        scan = make_scan(cfg, subject, index, time_point)
        write_scan(scan, Path(out_dir) / SITE, scan_folder(index, time_point))
        lesions = ndimage.label(scan.labels == 1, structure=FULLY_CONNECTED)[1]
        rows.append({"scan": phantom_scan_id(index, time_point), "subject": subject_id(index),
                     "time_point": time_point, "load": round(subject.load, 3),
                     "wmh_ml": float((scan.labels == 1).sum() * voxel_ml), "lesions": int(lesions),
                     "other_ml": float((scan.labels == 2).sum() * voxel_ml)})
    return rows


def generate(cfg: WmhPhantomConfig, out_dir: str | Path, workers: int = 1, progress: bool = True) -> list[dict]:
    """Write every subject's scans into ``out_dir`` (replaced as a whole), with the scan -> subject map at its root
    (``subjects.csv``: the split keeps a subject's two scans together); one statistics row per scan."""
    with atomic_dir(out_dir) as tmp:
        (Path(tmp) / SITE).mkdir(parents=True, exist_ok=True)
        per_subject = map_cases(_generate_subject, [(cfg, i, tmp) for i in range(cfg.n_subjects)], workers,
                                "wmh phantom", progress)
        rows = [row for rows in per_subject for row in rows]
        (Path(tmp) / SUBJECTS_FILE).write_text(format_subjects({row["scan"]: row["subject"] for row in rows}))
    return rows


def summarise(stats: list[dict]) -> dict:
    volumes = np.array([s["wmh_ml"] for s in stats])
    return {"scans": len(stats), "subjects": len({s["subject"] for s in stats}),
            "wmh_ml": {q: round(float(np.percentile(volumes, p)), 2) for q, p in
                       (("min", 0), ("p25", 25), ("median", 50), ("p75", 75), ("max", 100))},
            "mean_lesions": round(float(np.mean([s["lesions"] for s in stats])), 1),
            "with_other_pathology": sum(s["other_ml"] > 0 for s in stats)}
