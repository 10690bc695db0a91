"""DC-Seg's anatomical representations and modality codes on the test cases, as its evaluation sees them (Fig. 3).

How they are taken, per test case:

- the window: one cube of the run's evaluation size (``eval_patch``) at the centre of the (brain-cropped) volume, so
  every case shows the same deep anatomy (ventricles, basal ganglia) with its own deformation and, often, tumour;
  the sliding-window evaluation sees windows of that size, and instance norm takes its statistics from the window.
  (A window centred on each tumour made retrieval trivial: the raw input windows alone found the case 98 % of the
  time, because each case's window then lies somewhere else.) The raw input windows are scored the same way, as
  the reference an encoder has to beat;
- the model in eval mode, every modality given (each modality has its own encoder, so the mask plays no part);
- anatomy: the feature maps a_j [C, d, d, d] at the encoder level L_ana reads (``DCSegConfig.anatomy_level``; the
  deepest by default), not pooled: the run's own L_ana similarity compares maps (global SSIM for the paper's
  equations, the windowed SSIM of the official code); for the 2-D embedding they are flattened;
- modality code: m_j = E_mod_j(the window of modality j), [D].
"""

from __future__ import annotations

import numpy as np
import torch

from dcseg.data.errors import DataError
from dcseg.losses import pairwise_global_ssim, pairwise_windowed_ssim


def centre_window(shape, patch: int) -> tuple[slice, slice, slice]:
    """The ``patch``^3 window at the centre of a volume of ``shape`` (each axis >= patch; the odd voxel before)."""
    if min(shape) < patch:
        raise DataError(f"a preprocessed volume of shape {tuple(shape)} is smaller than the evaluation window {patch}; "
                        "raise preprocess.min_size to at least the window")
    return tuple(slice((n - patch) // 2, (n - patch) // 2 + patch) for n in shape)


def centre_crop(image: np.ndarray, patch: int) -> np.ndarray:
    """The centre ``patch``^3 window of every channel of ``image`` [M, X, Y, Z] -> [M, patch, patch, patch]."""
    return image[(slice(None),) + centre_window(image.shape[1:], patch)]


@torch.no_grad()
def case_representations(model: torch.nn.Module, image: np.ndarray, patch: int,
                         device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(anatomy [M, C, d, d, d], codes [M, D]) of one preprocessed case (image [M, X, Y, Z])."""
    if getattr(model, "modality_encoders", None) is None:
        raise ValueError("the model has no modality encoders (E_mod): nothing to take modality codes from")
    x = torch.from_numpy(np.ascontiguousarray(centre_crop(image, patch), np.float32))[None].to(device)
    model.eval()
    anatomy = model.encode(x)[model.config.anatomy_level][0]  # [M, C, d, d, d]
    codes = torch.cat([encoder(x[:, j:j + 1]) for j, encoder in enumerate(model.modality_encoders)])  # [M, D]
    return anatomy.float().cpu().numpy(), codes.float().cpu().numpy()


def anatomy_similarity(model: torch.nn.Module, anatomy: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """The run's own L_ana similarity between all maps ``[K, C, d, d, d]`` -> ``[K, K]``."""
    maps = torch.from_numpy(np.asarray(anatomy, np.float32))
    with torch.no_grad():
        if getattr(model, "is_official", False):
            return pairwise_windowed_ssim(maps).double().numpy()
        return pairwise_global_ssim(maps, c1, c2).double().numpy()




# ------------------------------------------------------------------------------------------ the stage's work

# Fig. 3's runs: the full model and the Table 2 variants without one or both contrastive terms
FIGURE_VARIANTS = ("full", "no_contrastive", "no_ana", "no_mod")
HOW = ("one eval_patch^3 window at the centre of each test case's volume, eval mode, all modalities; "
       "anatomy = the L_ana level's feature maps (unpooled; similarity = the run's L_ana SSIM; flattened for t-SNE); "
       "modality code = E_mod_j on the same window")


def figure_runs(cfg, exists) -> list:
    """The Fig. 3 runs to measure: the variants of ``FIGURE_VARIANTS`` at the first ablation seed, ``full`` (the main
    DC-Seg run) at that seed index when it is a main seed, else at the first main seed; runs whose model does not
    exist (``exists(run)`` false) are left out."""
    from dcseg.runs import Run, seed_lists

    seeds = seed_lists(cfg)
    seed = seeds["ablation"][0] if seeds["ablation"] else seeds["main"][0]
    runs = [Run("dcseg", seed=seed if seed in seeds["main"] else seeds["main"][0])]
    if seeds["ablation"]:
        runs += [Run("dcseg", variant, seed) for variant in FIGURE_VARIANTS[1:]]
    return [run for run in runs if exists(run)]


def measure_run(model, preprocessed_dir, cases: list[str], patch: int, c1: float, c2: float, device="cpu") -> dict:
    """The representations of every test case, their similarity matrix and the Fig. 3 numbers."""
    from dcseg.data.preprocess import load_case
    from dcseg.disentanglement import disentanglement

    anatomy, codes, windows = [], [], []
    for case in cases:
        image = np.asarray(load_case(preprocessed_dir, case)[0])
        a, m = case_representations(model, image, patch, device)
        anatomy.append(a)
        codes.append(m)
        windows.append(centre_crop(image, patch)[:, None])  # the window the model saw
    anatomy, codes = np.stack(anatomy), np.stack(codes)  # [N, M, C, d, d, d], [N, M, D]
    similarity = anatomy_similarity(model, anatomy.reshape((-1,) + anatomy.shape[2:]), c1, c2)
    # the reference: the same retrieval on the input windows themselves (global SSIM), i.e. how much of a case's
    # identity across modalities is already in its images, before any encoder
    windows = np.concatenate(windows)  # [N * M, 1, p, p, p]
    with torch.no_grad():
        input_similarity = pairwise_global_ssim(torch.from_numpy(np.ascontiguousarray(windows, np.float32)),
                                                c1, c2).double().numpy()
    return {"anatomy": anatomy, "codes": codes, "similarity": similarity,
            "numbers": disentanglement(similarity, codes),
            "input": input_reference(input_similarity, *codes.shape[:2])}


def input_reference(similarity: np.ndarray, n_cases: int, n_modalities: int) -> dict:
    """Case retrieval and same / different-case similarity of the raw input windows (no model)."""
    from dcseg.disentanglement import cross_modality_retrieval, item_labels, same_and_different_case_similarity

    case, modality = item_labels(n_cases, n_modalities)
    same, different = same_and_different_case_similarity(similarity, case, modality)
    return {"case_retrieval": cross_modality_retrieval(similarity, case, modality), "same_case_similarity": same,
            "different_case_similarity": different}


def embed_2d(vectors: np.ndarray, seed: int) -> np.ndarray:
    """A 2-D t-SNE embedding (scikit-learn) of ``[K, F]`` vectors; perplexity capped for few points."""
    from sklearn.manifold import TSNE

    k = len(vectors)
    perplexity = float(min(30.0, max(1.0, (k - 1) / 3)))  # scikit-learn needs perplexity < k
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        np.asarray(vectors, np.float64))


def draw(results: dict, modality_names: tuple[str, ...], path, seed: int) -> None:
    """Fig. 3: per run, t-SNE of the anatomy (colour = case, marker = modality) and of the modality codes (colour =
    modality)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dcseg.io import atomic_path

    markers = "osD^v<>p"
    fig, axes = plt.subplots(2, len(results), figsize=(3.6 * len(results), 7.2), squeeze=False)
    for column, (name, result) in enumerate(results.items()):
        n, m = result["codes"].shape[:2]
        anatomy = embed_2d(result["anatomy"].reshape(n * m, -1), seed)
        codes = embed_2d(result["codes"].reshape(n * m, -1), seed)
        case_colours = plt.cm.tab20(np.linspace(0, 1, max(n, 2)))
        numbers = result["numbers"]
        ax = axes[0, column]
        for j in range(m):
            ax.scatter(anatomy[j::m, 0], anatomy[j::m, 1], c=case_colours[:n], marker=markers[j % len(markers)],
                       s=28, edgecolors="k", linewidths=0.3, label=modality_names[j])
        ax.set_title(f"{name}: anatomy\nretrieval {numbers.case_retrieval:.2f} (chance {numbers.chance_retrieval:.2f})",
                     fontsize=9)
        ax.legend(fontsize=6, loc="best")
        ax = axes[1, column]
        for j in range(m):
            ax.scatter(codes[j::m, 0], codes[j::m, 1], s=28, marker=markers[j % len(markers)],
                       label=modality_names[j])
        identified = numbers.modality_identification
        ax.set_title(f"{name}: modality codes\nidentification "
                     f"{'n/a (1 case)' if identified is None else f'{identified:.2f}'}", fontsize=9)
        ax.legend(fontsize=6, loc="best")
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Fig. 3 analogue (t-SNE; anatomy: colour = case)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


__all__ = ["centre_window", "centre_crop", "case_representations", "anatomy_similarity", "figure_runs", "measure_run",
           "draw"]
