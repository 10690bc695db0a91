"""Anatomical BraTS-like phantom: the embedded default dataset.

Each case is built from real brain anatomy -- the ICBM 2009a MNI152 T1 template and its grey/white-matter
probability maps, which the nilearn wheel ships and which are read offline -- deformed per subject by a small
random affine and a smooth random elastic field. A tumour is seeded in white matter: edema (BraTS label 2)
around a core; in most cases the core is an irregular enhancing rim (4) around necrosis (1), in about 15% of
cases (like BraTS LGG) the core does not enhance and is all label 1. Shapes are thresholded smooth noise
around an ellipsoid, the anatomy around the core is pushed outwards (mild mass effect).

Per-modality contrast follows MRI physics qualitatively (relative to white matter in T1):

============== ====== ====== ====== ======
tissue          T1     T1ce   T2     FLAIR
============== ====== ====== ====== ======
white matter    1.00   1.00   0.45   0.55
grey matter     0.70   0.72   0.65   0.70
CSF             0.25   0.27   1.20   0.12   (FLAIR suppresses free water)
edema           0.88   0.90   0.95   1.05   (bright in T2/FLAIR; in T1 between GM and WM)
necrosis        0.40   0.42   1.10   0.75
enhancing       0.80   1.45   0.90   1.00   (bright only with contrast agent)
non-enh. core   0.55   0.57   1.00   0.90   (cases without enhancing tumour)
============== ====== ====== ====== ======

so the missing-modality problem is real: enhancing tumour is visible only in T1ce (elsewhere within ~5% of
edema, below the texture and noise), and edema extent needs FLAIR or T2. On top come per-subject contrast
jitter, a smooth multiplicative bias field per modality, Rician noise, partial volume from the tissue maps and
tumour texture. Images are skull-stripped (zero outside the brain) and written as int16, the segmentation as
uint8, in the exact BraTS 2020 layout, so preprocessing reads them like real data.

Deterministic: case ``i`` depends only on (seed, i) and the params, not on the number of cases.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from dcseg.data.brats import MODALITIES
from dcseg.io import atomic_dir, map_cases
from dcseg.validate import (dataclass_from, fraction, half_open_fraction, non_negative, non_negative_int, number,
                            positive, positive_int, range_pair)

# Relative tissue intensities per modality, in MODALITIES order (flair, t1ce, t1, t2).
TISSUE_CONTRAST: dict[str, dict[str, float]] = {
    "wm":        {"t1": 1.00, "t1ce": 1.00, "t2": 0.45, "flair": 0.55},
    "gm":        {"t1": 0.70, "t1ce": 0.72, "t2": 0.65, "flair": 0.70},
    "csf":       {"t1": 0.25, "t1ce": 0.27, "t2": 1.20, "flair": 0.12},
    "edema":     {"t1": 0.88, "t1ce": 0.90, "t2": 0.95, "flair": 1.05},
    "necrosis":  {"t1": 0.40, "t1ce": 0.42, "t2": 1.10, "flair": 0.75},
    "enhancing": {"t1": 0.80, "t1ce": 1.45, "t2": 0.90, "flair": 1.00},
    "nonenhancing_core": {"t1": 0.55, "t1ce": 0.57, "t2": 1.00, "flair": 0.90},
}

CASE_PREFIX = "BraTS20_Training_"


def _param(default, check):
    """A phantom parameter: its default and the check (dcseg.validate) its params.yaml value must pass."""
    return field(default=default, metadata={"check": check})


# [low, high] ranges of radii (mm) and of radius ratios; a ratio of 0 would leave an empty core or necrosis.
_RADII = functools.partial(range_pair, element=positive)
_RATIOS = functools.partial(range_pair, element=functools.partial(number, low=0, high=1, low_open=True))


@dataclass(frozen=True)
class PhantomConfig:
    """Phantom parameters (params.yaml ``phantom``). Lengths in mm; ``[low, high]`` pairs are uniform ranges."""

    n_cases: int = _param(40, positive_int)
    seed: int = _param(2020, non_negative_int)        # numpy seeds are non-negative
    voxel_size: float = _param(2.0, positive)
    margin: float = _param(16.0, non_negative)        # background kept around the brain (room for the deformation)
    max_rotation_deg: float = _param(6.0, non_negative)
    max_scale: float = _param(0.07, half_open_fraction)  # per-axis scale in [1 - s, 1 + s], so s < 1
    max_translation: float = _param(4.0, non_negative)
    elastic_amplitude: float = _param(3.0, non_negative)    # std of the elastic displacement
    elastic_smoothness: float = _param(12.0, non_negative)  # Gaussian sigma of the elastic field
    wt_radius: tuple[float, float] = _param((22.0, 34.0), _RADII)      # equivalent radius of the whole tumour
    core_fraction: tuple[float, float] = _param((0.55, 0.8), _RATIOS)  # core radius / whole-tumour radius
    necrosis_fraction: tuple[float, float] = _param((0.6, 0.85), _RATIOS)  # necrosis radius / core radius
    no_enhancing_fraction: float = _param(0.15, fraction)
    mass_effect: float = _param(0.35, non_negative)   # radial push at the tumour centre, relative to the core radius
    contrast_jitter: float = _param(0.06, half_open_fraction)  # relative, x U(1 - j, 1 + j) per subject/modality/tissue
    tumour_texture: float = _param(0.08, non_negative)  # relative std of smooth intensity texture inside the tumour
    bias_field: float = _param(0.15, non_negative)      # std of the log bias field
    noise: float = _param(0.03, non_negative)           # Rician noise std relative to white matter

    @classmethod
    def from_dict(cls, d, key: str = "phantom") -> "PhantomConfig":
        """The config from params ``key`` (a mapping; absent entries keep their defaults), each value checked and
        errors naming the full key, e.g. ``phantom.noise``."""
        return dataclass_from(cls, d, key)


def case_id(index: int) -> str:
    """BraTS-style case id, 1-based: ``BraTS20_Training_001``."""
    return f"{CASE_PREFIX}{index + 1:03d}"


# ----------------------------------------------------------------------------------------------- atlas


@dataclass(frozen=True)
class Atlas:
    t1: np.ndarray      # template T1, scaled to [0, 1]
    gm: np.ndarray      # grey-matter probability
    wm: np.ndarray      # white-matter probability
    brain: np.ndarray   # brain fraction (template T1 > 0), includes CSF
    affine: np.ndarray  # voxel -> mm of the (cropped, resampled) grid


def _nilearn_data_dir() -> Path:
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data"


ATLAS_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@functools.lru_cache(maxsize=4)
def load_atlas(voxel_size: float, margin: float) -> Atlas:
    """The MNI152 template and tissue maps resampled to ``voxel_size`` and cropped to the brain + margin."""
    maps = {}
    for key, name in ATLAS_FILES.items():
        path = _nilearn_data_dir() / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the phantom needs the MNI152 maps shipped in the nilearn wheel")
        img = nib.load(str(path))
        maps[key] = np.asarray(img.dataobj, dtype=np.float32) / 255.0
        src_affine = img.affine
    maps["brain"] = (maps["t1"] > 0).astype(np.float32)
    src_zoom = float(abs(src_affine[0, 0]))
    factor = src_zoom / voxel_size
    # Crop to the brain bounding box + margin in the 1 mm grid, then resample (linear; the brain fraction
    # becomes a partial-volume map).
    nz = np.nonzero(maps["brain"])
    pad = int(np.ceil(margin / src_zoom))
    lo = [int(a.min()) - pad for a in nz]
    hi = [int(a.max()) + 1 + pad for a in nz]
    # The template's brain reaches its lower border (brainstem): zero-pad where the margin leaves the volume.
    before = [max(-l, 0) for l in lo]
    after = [max(h - s, 0) for h, s in zip(hi, maps["brain"].shape)]
    sl = tuple(slice(max(l, 0), h) for l, h in zip(lo, hi))
    out = {k: np.clip(ndimage.zoom(np.pad(v[sl], list(zip(before, after))), factor, order=1, prefilter=False),
                      0, 1).astype(np.float32)
           for k, v in maps.items()}
    affine = src_affine.copy()
    affine[:3, 3] = src_affine[:3, :3] @ np.array(lo, float) + src_affine[:3, 3]
    affine[:3, :3] = src_affine[:3, :3] / factor
    return Atlas(affine=affine, **out)


# --------------------------------------------------------------------------------------- random fields


def smooth_noise(rng: np.random.Generator, shape, sigma_vox: float) -> np.ndarray:
    """Gaussian-smoothed white noise, rescaled to zero mean and unit std."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="reflect")
    return (n - n.mean()) / (n.std() + 1e-8)


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    ax, ay, az = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


# ------------------------------------------------------------------------------------------------ case


@dataclass
class PhantomCase:
    image: np.ndarray     # [4, X, Y, Z] int16 in MODALITIES order
    seg: np.ndarray       # [X, Y, Z] uint8, BraTS labels {0, 1, 2, 4}
    affine: np.ndarray
    has_enhancing: bool
    centre: tuple[int, int, int]


def make_case(cfg: PhantomConfig, index: int) -> PhantomCase:
    """Generate case ``index`` (0-based)."""
    rng = np.random.default_rng([cfg.seed, index])
    # drawn first, so the tumour type of case i does not depend on the voxel size
    has_enhancing = bool(rng.uniform() >= cfg.no_enhancing_fraction)
    atlas = load_atlas(cfg.voxel_size, cfg.margin)
    shape = atlas.brain.shape
    vs = cfg.voxel_size
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    centre_vol = (np.array(shape, np.float32) - 1) / 2

    # Subject deformation (output voxel -> atlas voxel): small affine about the centre + elastic field.
    lin = _rotation(rng, cfg.max_rotation_deg) @ np.diag(rng.uniform(1 - cfg.max_scale, 1 + cfg.max_scale, 3))
    shift = rng.uniform(-cfg.max_translation, cfg.max_translation, 3) / vs
    elastic = np.stack([smooth_noise(rng, shape, cfg.elastic_smoothness / vs) for _ in range(3)])
    elastic *= cfg.elastic_amplitude / vs

    # Tumour centre: a white-matter voxel of the atlas far enough from the brain surface; mapped to subject
    # space through the inverse affine (the elastic part is a few mm and ignored here).
    r_wt = rng.uniform(*cfg.wt_radius) / vs
    r_core = r_wt * rng.uniform(*cfg.core_fraction)
    r_nec = r_core * rng.uniform(*cfg.necrosis_fraction)
    depth = ndimage.distance_transform_edt(atlas.brain > 0.5)
    candidates = np.argwhere((atlas.wm > 0.7) & (depth > 0.8 * r_core + 3))
    if len(candidates) == 0:
        candidates = np.argwhere(atlas.wm > 0.5)
    c_atlas = candidates[rng.integers(len(candidates))].astype(np.float64)
    c = np.linalg.solve(lin, c_atlas - centre_vol - shift) + centre_vol

    # Mild mass effect: anatomy pushed radially away from the centre (content at x comes from x - push(x)).
    offset = grid - c.astype(np.float32)[:, None, None, None]
    dist = np.sqrt((offset ** 2).sum(0)) + 1e-3
    push = cfg.mass_effect * r_core * np.exp(-((dist / (1.5 * r_core)) ** 2))
    src = grid - offset / dist * push
    src = np.einsum("ij,j...->i...", lin.astype(np.float32), src - centre_vol[:, None, None, None])
    src += (centre_vol + shift).astype(np.float32)[:, None, None, None] + elastic

    def warp(vol):
        return ndimage.map_coordinates(vol, src, order=1, mode="constant", cval=0.0).astype(np.float32)

    brain, gm, wm, t1_template = warp(atlas.brain), warp(atlas.gm), warp(atlas.wm), warp(atlas.t1)
    gm, wm = np.minimum(gm, brain), np.minimum(wm, brain)
    csf = np.clip(brain - gm - wm, 0, 1)

    # Tumour regions: thresholded smooth noise around a random ellipsoid.
    axes = _rotation(rng, 90) @ np.diag(1 / rng.uniform(0.8, 1.25, 3))
    r = np.sqrt((np.einsum("ij,j...->i...", axes.astype(np.float32), offset) ** 2).sum(0))
    noise_sigma = 5.0 / vs
    inside = brain > 0.5
    edema = (r / r_wt + 0.3 * smooth_noise(rng, shape, noise_sigma) - 0.15 * (wm - 0.5) < 1) & inside & (csf < 0.6)
    core = _largest_component((r / r_core + 0.2 * smooth_noise(rng, shape, noise_sigma) < 1) & inside)
    whole = _largest_component(edema | core)
    necrosis = _largest_component(core & (r / r_nec + 0.15 * smooth_noise(rng, shape, noise_sigma) < 1))
    if has_enhancing and not necrosis.any():
        # A core too small for a necrotic centre would leave ET as a blob, not a rim.
        necrosis = core & (r < np.percentile(r[core], 30))
    seg = np.zeros(shape, np.uint8)
    seg[whole] = 2
    if has_enhancing:
        seg[core] = 4
        seg[necrosis] = 1
    else:
        seg[core] = 1
    brain_mask = inside | (seg > 0)

    # Partial-volume tissue fractions (normal tissue scaled down where tumour is).
    soft = {name: np.clip(ndimage.gaussian_filter(m.astype(np.float32), 0.6), 0, 1) for name, m in (
        ("edema", seg == 2),
        ("necrosis", (seg == 1) & has_enhancing),
        ("enhancing", seg == 4),
        ("nonenhancing_core", (seg == 1) & (not has_enhancing)),
    )}
    tumour_total = np.clip(sum(soft.values()), 0, 1)
    normal_total = np.maximum(gm + wm + csf, 1e-6)
    healthy = {"wm": wm / normal_total, "gm": gm / normal_total, "csf": csf / normal_total}
    texture = 1 + cfg.tumour_texture * smooth_noise(rng, shape, 2.0 / vs)
    t1_template_rel = t1_template / max(float(np.percentile(t1_template[wm > 0.9], 50)), 1e-6)

    image = np.zeros((len(MODALITIES),) + shape, np.int16)
    for k, mod in enumerate(MODALITIES):
        mean = {t: TISSUE_CONTRAST[t][mod] * rng.uniform(1 - cfg.contrast_jitter, 1 + cfg.contrast_jitter)
                for t in TISSUE_CONTRAST}
        normal = sum(healthy[t] * mean[t] for t in healthy)
        if mod in ("t1", "t1ce"):
            # Keep the template's own T1 texture (real anatomy detail) in the T1-weighted images.
            normal = 0.5 * normal + 0.5 * t1_template_rel
        tumour = sum(soft[t] * mean[t] for t in soft) * texture
        signal = (1 - tumour_total) * normal + tumour
        signal *= np.exp(cfg.bias_field * smooth_noise(rng, shape, 40.0 / vs))
        sigma = cfg.noise
        signal = np.sqrt((signal + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2)
        gain = rng.uniform(300, 900)  # arbitrary scanner units, like BraTS
        image[k] = np.where(brain_mask, np.round(signal * gain), 0).astype(np.int16)

    return PhantomCase(image=image, seg=seg, affine=atlas.affine, has_enhancing=has_enhancing,
                       centre=tuple(int(round(v)) for v in c))


def write_case(case: PhantomCase, out_dir: Path, cid: str) -> Path:
    """Write one case in the BraTS 2020 layout into ``out_dir/cid`` (complete files only: temp dir + rename)."""
    final = out_dir / cid
    tmp = out_dir / f".{cid}.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=False)
    for k, mod in enumerate(MODALITIES):
        nib.save(nib.Nifti1Image(case.image[k], case.affine), str(tmp / f"{cid}_{mod}.nii.gz"))
    nib.save(nib.Nifti1Image(case.seg, case.affine), str(tmp / f"{cid}_seg.nii.gz"))
    os.replace(tmp, final)
    return final


def _generate_one(args) -> dict:
    cfg, index, out_dir = args
    case = make_case(cfg, index)
    cid = case_id(index)
    write_case(case, out_dir, cid)
    voxel_ml = cfg.voxel_size ** 3 / 1000.0
    return {
        "case": cid,
        "has_enhancing": case.has_enhancing,
        "wt_ml": float((case.seg > 0).sum() * voxel_ml),
        "tc_ml": float(np.isin(case.seg, (1, 4)).sum() * voxel_ml),
        "et_ml": float((case.seg == 4).sum() * voxel_ml),
        "brain_ml": float((case.image != 0).any(0).sum() * voxel_ml),
    }


def generate(cfg: PhantomConfig, out_dir: str | Path, workers: int = 1, progress: bool = True) -> list[dict]:
    """Write ``cfg.n_cases`` cases into ``out_dir`` (replaced as a whole: built in a temp folder, then renamed,
    so a killed run never leaves a partial dataset). Returns per-case tumour statistics."""
    with atomic_dir(out_dir) as tmp:
        return map_cases(_generate_one, [(cfg, i, tmp) for i in range(cfg.n_cases)], workers, "phantom", progress)


def summarise(stats: list[dict]) -> dict:
    """Dataset-level tumour statistics (the numbers to hold against BraTS)."""
    n = len(stats)
    mean = lambda k: float(np.mean([s[k] for s in stats]))  # noqa: E731
    return {
        "n_cases": n,
        "mean_wt_ml": round(mean("wt_ml"), 2),
        "mean_tc_ml": round(mean("tc_ml"), 2),
        "mean_et_ml": round(mean("et_ml"), 2),
        "mean_brain_ml": round(mean("brain_ml"), 1),
        "share_without_et": round(sum(not s["has_enhancing"] for s in stats) / n, 3),
    }
