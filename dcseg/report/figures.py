"""The report's figures, drawn from numbers and arrays already computed: the Dice heatmap, the training curves and
the paper's Fig. 2 layout for one case (its predictions come from ``dcseg.report.example``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dcseg.data.brats import MODALITIES
from dcseg.figures import LABEL_COLOURS, LABEL_NAMES, axial, core_slice, show_gray, show_labels_on
from dcseg.metrics import REGIONS, dice
from dcseg.report.layout import PAPER_MODALITY_ORDER
from dcseg.subsets import MODALITY_LABELS, SUBSETS, Subset
from dcseg.tasks import BRATS

REGION_TITLES = {"WT": "Complete (WT)", "TC": "Core (TC)", "ET": "Enhancing (ET)"}


def plot_dice_heatmap(tables: dict[str, dict[str, dict[str, float]]], et_column: str) -> Figure:
    """Dice (%) of each subset (rows, paper order) and method (columns), one panel per region.
    ``tables``: method label -> ``dice_table`` (its ET from ``et_column``, named in the title)."""
    methods = list(tables)
    fig, axes = plt.subplots(1, len(REGIONS), figsize=(2.2 + 1.3 * len(methods) * len(REGIONS), 6.6),
                             sharey=True, constrained_layout=True)
    for ax, region in zip(axes, REGIONS):
        grid = np.array([[tables[m][s.name][region] for m in methods] for s in SUBSETS])
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            # dark text on the bright (high) end of viridis, light text on the dark end
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="black" if value >= 60 else "white")
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(REGION_TITLES[region])
    axes[0].set_yticks(range(len(SUBSETS)), [s.label for s in SUBSETS])
    fig.colorbar(image, ax=axes, label="Dice (%)", shrink=0.8)
    fig.suptitle(f"Dice (%) per modality subset, mean over test cases (ET column: {et_column})")
    return fig


SEED_STYLES = ("-", "--", ":", "-.")  # line style per seed index (cycled), colour per run group


def plot_training_curves(main: dict[str, dict[int, tuple]], ablation: dict[str, dict[int, tuple]],
                         validation: dict) -> Figure:
    """Per run group (colour) and seed (line style): the epoch loss (top row) and the validation Dice (bottom row,
    mean over regions and the validation subsets) against the step; Table 1's runs left, Table 2's right.
    ``main`` / ``ablation``: group label -> seed index -> (epoch-loss frame ``step``/``loss``, validation curve rows
    with ``step`` and ``mean``); ``validation``: one run's train_summary.json ``validation`` (its settings)."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharex="col", constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, (groups, title) in enumerate(((main, "Table 1 runs"), (ablation, "Table 2 runs (DC-Seg variants)"))):
        loss_ax, val_ax = axes[0, column], axes[1, column]
        for k, (label, seeds) in enumerate(groups.items()):
            colour = colours[k % len(colours)]
            for seed, (loss, curve) in sorted(seeds.items()):
                style = SEED_STYLES[seed % len(SEED_STYLES)]
                name = f"{label}, seed {seed}"
                loss_ax.plot(loss["step"], loss["loss"], style, color=colour, linewidth=1.2, label=name)
                if curve:
                    val_ax.plot([row["step"] for row in curve], [100 * row["mean"] for row in curve], style,
                                color=colour, linewidth=1.2, marker=".", label=name)
        loss_ax.set_ylabel("epoch loss (mean over the epoch's steps)")
        loss_ax.set_yscale("log")
        loss_ax.set_title(title)
        val_ax.set_ylabel("validation Dice (%)")
        val_ax.set_xlabel("training step")
        for ax in (loss_ax, val_ax):
            ax.grid(alpha=0.3)
        loss_ax.legend(fontsize=7, ncol=2)
    subsets = ", ".join(validation.get("subsets") or [])
    fig.suptitle("Training per run and seed (logs/<run>/live, dvclive). Top: each model's own total loss (compare "
                 f"shapes, not levels, across models). Bottom: validation Dice, mean of WT/TC/ET over {subsets}, "
                 f"every {validation.get('every')} steps", fontsize=10)
    return fig


def _case_dice(prediction: np.ndarray, label: np.ndarray) -> str:
    """Raw Dice (%) of one prediction over the whole volume, per region, for a panel title."""
    predicted, truth = BRATS.region_masks(prediction), BRATS.region_masks(label)
    return " ".join(f"{r} {100 * dice(predicted[r], truth[r]):.0f}" for r in REGIONS)


def plot_example_case(image: np.ndarray, label: np.ndarray, predictions: dict[str, np.ndarray],
                      subsets: tuple[Subset, ...], case: str, slice_index: int | None = None) -> Figure:
    """The paper's Fig. 2 layout for one case: row 1 the four inputs (paper order) and the ground truth on FLAIR;
    then per method its prediction on FLAIR under each of ``subsets``. ``image [4, X, Y, Z]`` in MODALITIES order,
    ``label`` and ``predictions[method] [len(subsets), X, Y, Z]`` in {0, 1, 2, 3}."""
    z = core_slice(label) if slice_index is None else slice_index
    n_columns = max(len(PAPER_MODALITY_ORDER) + 1, len(subsets))
    fig, axes = plt.subplots(1 + len(predictions), n_columns, squeeze=False,
                             figsize=(2.3 * n_columns, 2.5 * (1 + len(predictions)) + 0.6))
    flair = axial(image[MODALITIES.index("flair")], z)
    for ax, modality in zip(axes[0], PAPER_MODALITY_ORDER):
        show_gray(ax, axial(image[MODALITIES.index(modality)], z))
        ax.set_title(MODALITY_LABELS[modality])
    show_labels_on(axes[0, len(PAPER_MODALITY_ORDER)], flair, axial(label, z))
    axes[0, len(PAPER_MODALITY_ORDER)].set_title("ground truth")
    for row, (method, labels) in enumerate(predictions.items(), start=1):
        for column, subset in enumerate(subsets):
            show_labels_on(axes[row, column], flair, axial(labels[column], z))
            axes[row, column].set_title(f"{subset.label}\n{_case_dice(labels[column], label)}", fontsize=8)
        axes[row, 0].set_ylabel(method, fontsize=11)
    used = {(0, c) for c in range(len(PAPER_MODALITY_ORDER) + 1)}
    used |= {(r, c) for r in range(1, 1 + len(predictions)) for c in range(len(subsets))}
    for (r, c), ax in np.ndenumerate(axes):
        if (r, c) not in used:
            ax.set_visible(False)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    legend = [Patch(color=LABEL_COLOURS.colors[k], label=LABEL_NAMES[k]) for k in (1, 2, 3)]
    fig.legend(handles=legend, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(f"{case}, axial slice {z}: predictions on FLAIR per available-modality subset "
                 "(titles: this case's raw Dice %)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
