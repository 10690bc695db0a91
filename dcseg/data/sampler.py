"""Training batches: random crops with the references' augmentation and a random modality subset per sample.

Every batch is a pure function of (seed, step): cases are visited in passes (a seeded permutation per pass,
like a shuffled loader streaming epochs), and each sample's crop, augmentation and modality subset come from a
generator seeded with (seed, step, sample index). So a run resumed from a checkpoint at step s sees exactly
the batches an uninterrupted run sees, and a distributed run splits the same global batch across ranks.

Augmentation (``docs/reference.md`` §Augmentation; quirk labels: §Quirks), in the references' order:
1. random crop, start uniform per axis; with probability ``foreground_fraction`` instead a crop that contains a
   random tumour voxel (nnU-Net's foreground oversampling; 0 reproduces the references, which crop uniformly);
2. optional rotation: one of the 3 planes, an integer angle in [-10, 9] degrees, nearest neighbour, image
   fill -1 and label fill 0 (as RFNet);
3. intensity: x * U(1 - s, 1 + s) + U(-b, b) per channel (``intensity_per_slice`` reproduces quirk Q6: one
   factor per (first-axis index, channel));
4. flip of each spatial axis with p = 0.5;
5. a modality subset drawn uniformly from the 15 non-empty subsets (per sample, not per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dcseg.data.errors import DataError
from dcseg.data.preprocess import load_case
from dcseg.tasks import task_of


@dataclass(frozen=True)
class AugmentConfig:
    rotate: bool = False
    flip: bool = True
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    intensity_per_slice: bool = False


def _foreground(label: np.ndarray, ignore_label: int | None) -> np.ndarray:
    return (label > 0) if ignore_label is None else (label > 0) & (label != ignore_label)


class TrainingSampler:
    """Draws augmented training crops from memory-mapped preprocessed cases."""

    def __init__(self, preprocessed_dir, case_ids, crop_size, augment: AugmentConfig, seed: int,
                 foreground_fraction: float = 0.0, masks=None, ignore_label: int | None = None):
        """``masks``: the modality subsets a sample's mask is drawn from (default: those of the store's task,
        ``dcseg.tasks.task_of``);
        ``ignore_label``: a label that is no foreground for the foreground-centred crops (WMH: 2)."""
        if not 0.0 <= foreground_fraction <= 1.0:
            raise DataError(f"foreground_fraction is {foreground_fraction}; expected a probability in [0, 1]")
        self.foreground_fraction = float(foreground_fraction)
        if not case_ids:
            raise DataError(f"no training cases in {preprocessed_dir}")
        self.case_ids = list(case_ids)
        self.cases = [load_case(preprocessed_dir, c) for c in self.case_ids]
        self.crop = tuple(int(c) for c in (crop_size if np.ndim(crop_size) else (crop_size,) * 3))
        self.augment = augment
        self.seed = int(seed)
        masks = task_of(preprocessed_dir).masks if masks is None else masks
        self.masks = tuple(tuple(bool(v) for v in m) for m in masks)
        for cid, (image, _) in zip(self.case_ids, self.cases):
            if any(s < c for s, c in zip(image.shape[1:], self.crop)):
                raise DataError(f"case {cid}: shape {image.shape[1:]} is smaller than the training crop {self.crop}; "
                                "raise preprocess.min_size to at least the crop size")
        # tumour voxel coordinates per case, for foreground-centred crops (empty for a case without tumour)
        self.foreground = ([np.argwhere(_foreground(np.asarray(label), ignore_label)) for _, label in self.cases]
                           if self.foreground_fraction > 0 else None)

    def case_for(self, global_index: int) -> int:
        """Index of the case at position ``global_index`` of the stream of shuffled passes."""
        n = len(self.cases)
        p, i = divmod(global_index, n)
        return int(np.random.default_rng([self.seed, 1, p]).permutation(n)[i])

    def sample(self, step: int, index: int, batch_size: int):
        """Sample ``index`` of the global batch of ``step``: image float32 [M, c, c, c], label int64 [c, c, c],
        mask bool [M]."""
        rng = np.random.default_rng([self.seed, 2, step, index])
        case = self.case_for(step * batch_size + index)
        image, label = self.cases[case]
        starts = [int(rng.integers(0, s - c + 1)) for s, c in zip(label.shape, self.crop)]
        if self.foreground is not None and rng.uniform() < self.foreground_fraction:
            fg = self.foreground[case]
            if len(fg):
                voxel = fg[int(rng.integers(len(fg)))]
                # a start that puts the voxel anywhere inside the crop, clipped to the volume
                starts = [int(np.clip(v - rng.integers(0, c), 0, s - c)) for v, s, c in zip(voxel, label.shape, self.crop)]
        sl = tuple(slice(a, a + c) for a, c in zip(starts, self.crop))
        x = np.array(image[(slice(None),) + sl], dtype=np.float32)
        y = np.array(label[sl])
        a = self.augment
        if a.rotate:
            plane = [(1, 2), (0, 2), (0, 1)][int(rng.integers(3))]
            angle = int(rng.integers(-10, 10))
            x = np.stack([ndimage.rotate(ch, angle, axes=plane, reshape=False, order=0, mode="constant", cval=-1.0)
                          for ch in x])
            y = ndimage.rotate(y, angle, axes=plane, reshape=False, order=0, mode="constant", cval=0)
        if a.intensity_scale or a.intensity_shift:
            shape = (x.shape[0], x.shape[1], 1, 1) if a.intensity_per_slice else (x.shape[0], 1, 1, 1)
            scale = rng.uniform(1 - a.intensity_scale, 1 + a.intensity_scale, shape).astype(np.float32)
            shift = rng.uniform(-a.intensity_shift, a.intensity_shift, shape).astype(np.float32)
            x = x * scale + shift
        if a.flip:
            for axis in range(3):
                if rng.uniform() < 0.5:
                    x, y = np.flip(x, axis + 1), np.flip(y, axis)
        mask = np.array(self.masks[int(rng.integers(len(self.masks)))], dtype=bool)
        return np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=np.int64), mask

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        """This rank's share of the global batch of ``step`` (samples rank, rank + world_size, ...)."""
        samples = [self.sample(step, i, batch_size) for i in range(rank, batch_size, world_size)]
        x, y, m = zip(*samples)
        return np.stack(x), np.stack(y), np.stack(m)
