"""Figures shared by stages: one case's modalities and labels (the phantom preview, the paper's Fig. 2 panel)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from dcseg.io import atomic_path
from dcseg.subsets import MODALITY_LABELS  # noqa: E402
from dcseg.data.brats import MODALITIES  # noqa: E402

# BraTS label colours: NCR/NET red, edema green, enhancing yellow (index = label value after 4 -> 3).
LABEL_COLOURS = ListedColormap([(0, 0, 0, 0), (0.9, 0.1, 0.1, 0.7), (0.1, 0.8, 0.2, 0.5), (1.0, 0.9, 0.0, 0.8)])
LABEL_NAMES = ("background", "NCR/NET", "edema", "enhancing")


def save_figure_atomic(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a figure through a temp file + rename, so a killed run never leaves a truncated PNG."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)


def core_slice(label: np.ndarray) -> int:
    """The axial slice with the most tumour core (else the most tumour, else the middle one)."""
    core = np.isin(label, (1, 3))
    per_slice = (core if core.any() else label > 0).sum(axis=(0, 1))
    return int(per_slice.argmax()) if per_slice.any() else label.shape[2] // 2


def axial(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice ``z`` of an ``[X, Y, Z]`` volume, oriented for display."""
    return np.rot90(np.asarray(volume[:, :, z]))


def show_gray(ax, slice_2d: np.ndarray) -> None:
    """An image slice in grey, windowed to its 1st-99.5th percentile."""
    ax.imshow(slice_2d, cmap="gray", vmin=np.percentile(slice_2d, 1), vmax=np.percentile(slice_2d, 99.5))


def show_labels_on(ax, background: np.ndarray, labels_2d: np.ndarray) -> None:
    """Labels {0, 1, 2, 3} in the BraTS colours over a grey slice."""
    show_gray(ax, background)
    ax.imshow(labels_2d, cmap=LABEL_COLOURS, vmin=0, vmax=3, interpolation="nearest")


def plot_case(image: np.ndarray, label: np.ndarray, path: str | Path, title: str, slice_index: int | None = None):
    """Axial slice of the four modalities plus the labels overlaid on FLAIR. ``label`` uses {0, 1, 2, 3}
    (BraTS 4 already mapped to 3). The slice defaults to the one through most of the tumour core."""
    if slice_index is None:
        slice_index = core_slice(label)
    fig, axes = plt.subplots(1, len(MODALITIES) + 1, figsize=(3 * (len(MODALITIES) + 1), 3.4))
    for ax, k in zip(axes, range(len(MODALITIES))):
        show_gray(ax, axial(image[k], slice_index))
        ax.set_title(MODALITY_LABELS[MODALITIES[k]])
    show_labels_on(axes[-1], axial(image[0], slice_index), axial(label, slice_index))
    axes[-1].set_title("labels: NCR red, ED green, ET yellow", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{title} (axial slice {slice_index})")
    save_figure_atomic(fig, path)


def placeholder_figure(path: str | Path, text: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    save_figure_atomic(fig, path)
