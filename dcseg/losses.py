"""Losses of DC-Seg and of the RFNet/mmFormer baselines.

Segmentation losses are those of the references' shared ``utils/criterions.py`` (``docs/reference.md`` §Losses):
a weighted cross-entropy with per-sample class weights and log(clamp(p, 0.005)), and a batch-pooled Dice over all
classes, background included. Departure from quirk Q7 (``docs/reference.md`` §Quirks): the models return logits and
these functions apply the softmax themselves (numerically the same loss; log(clamp(softmax, 0.005)) is computed as
clamp(log_softmax, log 0.005)).

DC-Seg's disentanglement losses follow the paper (section 2, eqs. 1-9) with the choices of ``docs/reference.md``
§DC-Seg: SSIM from whole-map statistics with C1 = 1e-4, C2 = 9e-4; the sigmoid loss without bias over all ordered
pairs, self-pairs included; reductions are batch means (the paper writes sums over samples, which only rescales by N).
For the official implementation (a model output of type ``OfficialTrainOutput``; ``docs/reference.md`` §Official)
``total_loss`` computes the official code's terms instead, with the same functions where the two agree: L_ana's SSIM
over 11^3 Gaussian windows by torchmetrics (the call the official code makes), MSE for L_rec, and the KL term on the
AdaIN parameters; the fixed temperature comes with the output.

All losses compute in float32 (autocast is switched off inside) and stay finite, with finite gradients, for constant
feature maps, zero vectors and all-background crops; the official terms only as far as the official code does (its
SSIM is NaN when all anatomy maps are one constant, its KL infinite for a sigma of exactly 0).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from dcseg.experiments import VARIANTS
from dcseg.models.official import OfficialTrainOutput

if TYPE_CHECKING:
    from dcseg.models.outputs import TrainOutput

PROBABILITY_FLOOR = 0.005  # the references clamp p before the log: no gradient below it
DICE_EPS = 1e-7
COSINE_EPS = 1e-6
SSIM_WINDOW_PADDING = 5  # torchmetrics pads by reflection with half its 11^3 Gaussian window (sigma 1.5)
OFFICIAL_KL_WEIGHT = 0.1  # official train.py: alpha = 0.1 on the KL term, 4 alpha = 0.4 on L_ana, L_mod, L_rec


def _float32(fn):
    """Run ``fn`` with autocast off and half inputs promoted, so that reductions over whole volumes stay accurate."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with ExitStack() as stack:
            for device_type in ("cpu", "cuda"):
                if (device_type == "cpu" or torch.cuda.is_available()) and torch.is_autocast_enabled(device_type):
                    stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
            args = [_as_float(a) for a in args]
            kwargs = {k: _as_float(v) for k, v in kwargs.items()}
            return fn(*args, **kwargs)

    return wrapper


def _as_float(t):
    if isinstance(t, torch.Tensor) and t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    return t


# --------------------------------------------------------------------------------------------------------------------
# Segmentation (L_seg, L_reg): weighted cross-entropy + Dice, as the references


def _class_weights(labels: torch.Tensor, num_classes: int, dtype: torch.dtype,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """w_{b,c} = 1 - N_{b,c} / N_b: one minus the fraction of sample b's voxels in class c. ``[B, K]``. With
    ``valid`` (bool, like labels) only the valid voxels are counted, in N_{b,c} and in N_b."""
    flat = labels.flatten(1)
    counts = torch.zeros(flat.shape[0], num_classes, dtype=dtype, device=labels.device)
    if valid is None:
        counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=dtype))
        return 1 - counts / flat.shape[1]
    ones = valid.flatten(1).to(dtype)
    counts.scatter_add_(1, flat, ones)
    return 1 - counts / ones.sum(1, keepdim=True).clamp_min(1)


def _weighted_ce_from_log_probs(log_probs: torch.Tensor, labels: torch.Tensor,
                                valid: torch.Tensor | None = None) -> torch.Tensor:
    """mean over (b, voxel) of sum_c -w_{b,c} t_{b,c} log p_{b,c}, with log p already clamped; with ``valid``, the
    mean over the valid voxels."""
    weights = _class_weights(labels, log_probs.shape[1], log_probs.dtype, valid)
    voxel_weights = weights.gather(1, labels.flatten(1)).view_as(labels)
    picked = log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)
    if valid is None:
        return -(voxel_weights * picked).mean()
    mask = valid.to(picked.dtype)
    return -(voxel_weights * picked * mask).sum() / mask.sum().clamp_min(1)


def _dice_from_probs(probs: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """1 - (1/K) sum_c 2 sum(p_c t_c) / (sum p_c + sum t_c + 1e-7), sums over the whole batch and space (with
    ``valid``: over the valid voxels only)."""
    k = probs.shape[1]
    flat_labels = labels.flatten()
    picked = probs.gather(1, labels.unsqueeze(1)).flatten()  # p of the true class at every voxel
    if valid is None:
        label_volume = torch.bincount(flat_labels, minlength=k).to(probs.dtype)
        prediction_volume = probs.transpose(0, 1).flatten(1).sum(1)
    else:
        mask = valid.flatten().to(probs.dtype)
        picked = picked * mask
        label_volume = torch.zeros(k, dtype=probs.dtype, device=probs.device).index_add(0, flat_labels, mask)
        prediction_volume = (probs * valid.unsqueeze(1).to(probs.dtype)).transpose(0, 1).flatten(1).sum(1)
    intersection = torch.zeros(k, dtype=probs.dtype, device=probs.device).index_add(0, flat_labels, picked)
    return 1 - (2 * intersection / (prediction_volume + label_volume + DICE_EPS)).mean()


def split_ignored(labels: torch.Tensor, ignore_label: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(class indices with ignored voxels set to 0, the valid-voxel mask or None): voxels labelled ``ignore_label``
    (the WMH challenge's "other pathology") take no part in any loss term."""
    if ignore_label is None:
        return labels, None
    valid = labels != ignore_label
    return torch.where(valid, labels, torch.zeros_like(labels)), valid


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.dtype != torch.long:
        raise TypeError(f"labels must be int64 class indices, got {labels.dtype}")
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")


@_float32
def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_label: int | None = None
                           ) -> torch.Tensor:
    """Reference ``softmax_weighted_loss``: mean_{b,v} -w_{b,y} log(clamp(softmax(logits)_{b,y}, 0.005, 1)).

    logits ``[B, K, X, Y, Z]``, labels int64 ``[B, X, Y, Z]`` in 0..K-1. Class weights w_{b,c} = 1 - N_{b,c}/N_b per
    sample (all classes, background included), so an all-background crop gives exactly 0. Voxels labelled
    ``ignore_label`` are left out (``split_ignored``).
    """
    _check_labels(logits, labels)
    labels, valid = split_ignored(labels, ignore_label)
    log_probs = F.log_softmax(logits, dim=1).clamp_min(math.log(PROBABILITY_FLOOR))
    return _weighted_ce_from_log_probs(log_probs, labels, valid)


@_float32
def dice_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_label: int | None = None) -> torch.Tensor:
    """Reference ``dice_loss``: 1 - (1/K) sum_c 2 sum p_c t_c / (sum p_c + sum t_c + 1e-7), p = softmax(logits).

    Pooled over the whole batch; all K classes including background; a class absent from prediction-free labels
    contributes a constant 0 Dice. Voxels labelled ``ignore_label`` are left out.
    """
    _check_labels(logits, labels)
    labels, valid = split_ignored(labels, ignore_label)
    return _dice_from_probs(torch.softmax(logits, dim=1), labels, valid)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_label: int | None = None) -> torch.Tensor:
    """WCE + Dice (the paper's L_WCE + L_DL, eqs. 7-8)."""
    return weighted_cross_entropy(logits, labels, ignore_label) + dice_loss(logits, labels, ignore_label)


@_float32
def deep_supervision_loss(logits: list[torch.Tensor], labels: torch.Tensor, ignore_label: int | None = None
                          ) -> torch.Tensor:
    """Sum over decoder levels of WCE + Dice on softmax(logits_l) upsampled to the label size.

    As in the references, the probabilities (not the logits) are upsampled, trilinearly with align_corners=True.
    """
    total = labels.new_zeros((), dtype=torch.float32)
    labels, valid = split_ignored(labels, ignore_label)
    for level_logits in logits:
        probs = torch.softmax(level_logits, dim=1)
        if probs.shape[2:] != labels.shape[1:]:
            probs = F.interpolate(probs, size=labels.shape[1:], mode="trilinear", align_corners=True)
        _check_labels(probs, labels)
        log_probs = torch.log(probs.clamp(PROBABILITY_FLOOR, 1.0))
        total = total + _weighted_ce_from_log_probs(log_probs, labels, valid) + _dice_from_probs(probs, labels, valid)
    return total


def regulariser_loss(modality_logits: torch.Tensor, labels: torch.Tensor, ignore_label: int | None = None
                     ) -> torch.Tensor:
    """L_reg (eq. 7): sum over modalities j of WCE + Dice of D_sep(a_j); modality_logits ``[B, M, K, X, Y, Z]``."""
    return sum(segmentation_loss(modality_logits[:, j], labels, ignore_label)
               for j in range(modality_logits.shape[1]))


# --------------------------------------------------------------------------------------------------------------------
# Disentanglement (L_ana, L_mod, L_rec)


def _ssim_from_statistics(mu_a, mu_b, var_a, var_b, cov, c1, c2):
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


@_float32
def global_ssim(a: torch.Tensor, b: torch.Tensor, c1: float = 1e-4, c2: float = 9e-4) -> torch.Tensor:
    """Eq. 3: SSIM(a, b) = (1/C) sum_c (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 +
    sigma_b^2 + C2)), each statistic over the whole 3D map of channel c (no sliding window).

    a, b ``[..., C, X, Y, Z]`` (broadcastable) -> ``[...]``. Variances and covariance are population statistics
    (covariance = mean of products of the centred maps). Identical maps give 1; constant maps stay finite.
    """
    dims = (-3, -2, -1)
    mu_a, mu_b = a.mean(dims, keepdim=True), b.mean(dims, keepdim=True)
    da, db = a - mu_a, b - mu_b
    ssim = _ssim_from_statistics(mu_a.squeeze(dims), mu_b.squeeze(dims), da.square().mean(dims),
                                 db.square().mean(dims), (da * db).mean(dims), c1, c2)
    return ssim.mean(-1)


@_float32
def pairwise_global_ssim(maps: torch.Tensor, c1: float = 1e-4, c2: float = 9e-4) -> torch.Tensor:
    """``global_ssim`` between all pairs of K maps ``[K, C, X, Y, Z]`` -> ``[K, K]``, without materialising the
    K^2 pair maps (covariances by one batched matrix product over channels)."""
    flat = maps.flatten(2)  # [K, C, V]
    mu = flat.mean(-1)
    centred = flat - mu.unsqueeze(-1)
    var = centred.square().mean(-1)
    cov = torch.einsum("kcv,lcv->klc", centred, centred) / flat.shape[-1]
    return _ssim_from_statistics(mu[:, None], mu[None], var[:, None], var[None], cov, c1, c2).mean(-1)


@_float32
def pairwise_windowed_ssim(maps: torch.Tensor) -> torch.Tensor:
    """The official L_ana similarity between all pairs of K maps ``[K, C, X, Y, Z]`` -> ``[K, K]``.

    As the official code: torchmetrics' ``structural_similarity_index_measure`` (its defaults: Gaussian 11^3 window,
    sigma 1.5, reflect padding, the mean over channels and voxels) on the stacks of the K (K - 1) / 2 pairs i < j,
    with C1 = (0.01 R)^2, C2 = (0.03 R)^2 for the data range R torchmetrics takes from those stacks: max(range of
    maps 0..K-2, range of maps 1..K-1), differentiable like the rest. The matrix is symmetric with a diagonal of 1.
    Every side of the maps must exceed 5 voxels (the reflect padding): a crop of at least 48 voxels. Cost: five
    depthwise 11^3 convolutions over the K (K - 1) / 2 pairs, as in the official training.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure  # slow import: official only

    if min(maps.shape[2:]) <= SSIM_WINDOW_PADDING:
        raise ValueError(f"the official SSIM needs maps wider than {SSIM_WINDOW_PADDING} voxels, got "
                         f"{tuple(maps.shape[2:])} (a crop of at least 48 voxels per side)")
    k = maps.shape[0]
    first, second = torch.triu_indices(k, k, offset=1, device=maps.device)  # row by row, as the official loops
    ssim = structural_similarity_index_measure(maps[first], maps[second], reduction="none")
    upper = maps.new_zeros(k, k).index_put((first, second), ssim)
    return torch.where(torch.eye(k, dtype=torch.bool, device=maps.device), 1.0, upper + upper.T)


@_float32
def sigmoid_contrastive_loss(similarity: torch.Tensor, positive: torch.Tensor,
                             temperature: float | torch.Tensor) -> torch.Tensor:
    """Eqs. 1, 2, 4: -(1/K^2) sum over all K^2 ordered pairs (self-pairs included) of log sigmoid(f t s), with
    f = +1 for positive pairs and -1 otherwise, t the temperature and s the similarity ``[K, K]``. No bias term."""
    sign = positive.to(similarity.dtype) * 2 - 1
    return -F.logsigmoid(sign * temperature * similarity).mean()


def anatomical_contrastive_loss(anatomy: torch.Tensor, temperature: float | torch.Tensor,
                                c1: float = 1e-4, c2: float = 9e-4, *, windowed: bool = False) -> torch.Tensor:
    """L_ana (eq. 1): anatomy ``[N, M, C, X, Y, Z]``; positives = maps of the same subject (any modality);
    similarity between all N*M maps = ``global_ssim`` with c1, c2, or with ``windowed`` the official
    ``pairwise_windowed_ssim`` (c1, c2 then follow from the data range)."""
    n, m = anatomy.shape[:2]
    maps = anatomy.flatten(0, 1)
    similarity = pairwise_windowed_ssim(maps) if windowed else pairwise_global_ssim(maps, c1, c2)
    subject = torch.arange(n, device=anatomy.device).repeat_interleave(m)
    return sigmoid_contrastive_loss(similarity, subject[:, None] == subject[None], temperature)


@_float32
def modality_contrastive_loss(vectors: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """L_mod (eq. 4): vectors ``[N, M, D]``; positives = the same modality (any subject); similarity = cosine.

    A zero vector has similarity 0 to everything (its norm is floored at 1e-6), so the loss stays finite.
    """
    n, m = vectors.shape[:2]
    flat = vectors.flatten(0, 1)
    unit = flat / flat.square().sum(-1, keepdim=True).clamp_min(COSINE_EPS**2).sqrt()
    modality = torch.arange(m, device=vectors.device).repeat(n)
    return sigmoid_contrastive_loss(unit @ unit.T, modality[:, None] == modality[None], temperature)


@_float32
def reconstruction_loss(reconstructions: torch.Tensor, images: torch.Tensor, *, squared: bool = False) -> torch.Tensor:
    """L_rec (eq. 5) as an L1: per modality the mean absolute error per voxel, summed over modalities, averaged over
    the batch. reconstructions, images ``[B, M, X, Y, Z]``. (A literal voxel sum would swamp the other terms.)
    ``squared``: the official code's MSE instead, the mean over batch, modalities and voxels."""
    if reconstructions.shape != images.shape:
        raise ValueError(f"reconstructions {tuple(reconstructions.shape)} vs images {tuple(images.shape)}")
    error = reconstructions - images
    if squared:
        return error.square().mean()
    return error.abs().mean(dim=(0, 2, 3, 4)).sum()


@_float32
def adain_kl_loss(means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The official KL term: sum over modalities j of KL(N(mu_j, sigma_j^2) || N(0, 1)) averaged over batch and
    channels, 0.5 mean(sigma^2 + mu^2 - 1 - log sigma^2); means, scales ``[B, M, C]`` (the AdaIN shift and gain).
    Computed as the official code does, through log sigma^2 and its exp."""
    log_var = torch.log(scales.square())
    return (0.5 * (log_var.exp() + means.square() - 1 - log_var)).mean(dim=(0, 2)).sum()


# --------------------------------------------------------------------------------------------------------------------
# Total loss


@dataclass(frozen=True)
class LossTerms:
    """Which terms of L = w_fuse L_fuse + L_ds + L_reg + alpha (L_ana + L_mod + L_rec) are on.

    L_seg = L_fuse + L_ds: the fused prediction plus the deep supervision (RFNet's probability maps / mmFormer's
    decoder heads; DC-Seg keeps RFNet's, which alone train the detached probability-map generators).
    """

    fuse: bool = True
    deep_supervision: bool = True
    reg: bool = True
    ana: bool = True
    mod: bool = True
    rec: bool = True


# The paper's Table 2 variants (dcseg.experiments.VARIANTS): the terms each one trains with.
ABLATIONS: dict[str, LossTerms] = {variant: LossTerms(**{term: False for term in off})
                                   for variant, off in VARIANTS.items()}

DEFAULT_TEMPERATURE = 10.0  # used only when an output carries no temperature


def available_terms(output: TrainOutput) -> LossTerms:
    """The terms a model output has inputs for (RFNet/mmFormer: fuse, deep supervision, reg)."""
    return LossTerms(
        fuse=True,
        deep_supervision=bool(output.deep_supervision_logits),
        reg=output.modality_logits is not None,
        ana=output.anatomy is not None,
        mod=output.modality_vectors is not None,
        rec=output.reconstructions is not None,
    )


def total_loss(output: TrainOutput, labels: torch.Tensor, images: torch.Tensor | None = None, *,
               alpha: float = 0.4, fuse_weight: float = 1.0, terms: LossTerms | None = None,
               ssim_c1: float = 1e-4, ssim_c2: float = 9e-4, ignore_label: int | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9: L = L_seg + L_reg + alpha (L_ana + L_mod + L_rec), with L_seg = fuse_weight * L_fuse + L_ds.

    output: a model's train-mode ``TrainOutput``; labels int64 ``[B, X, Y, Z]``; images ``[B, M, X, Y, Z]`` (needed for
    L_rec). ``fuse_weight`` is the trainer's warm-up (RFNet: 0 for the first 20 epochs, then 1). ``terms=None`` uses
    every term the output has inputs for; an explicit ``terms`` (e.g. ``ABLATIONS["no_rec"]``) must only ask for
    available ones. Returns the loss and its detached parts ("fuse", "deep_supervision", "reg", "ana", "mod", "rec",
    "kl", "total") for logging.

    An ``OfficialTrainOutput`` gets the official terms: L_ana with ``pairwise_windowed_ssim`` (``ssim_c1``,
    ``ssim_c2`` unused), L_rec as an MSE, and + 0.1 KL whenever the output has AdaIN parameters, whatever ``terms``
    says: the official training adds it in every run, its reconstruction ablation included. ``ignore_label``: voxels
    with that label (WMH: 2, other pathology) are left out of every segmentation term (L_seg, L_reg).
    """
    available = available_terms(output)
    if terms is None:
        terms = available
    missing = [f.name for f in dataclasses.fields(LossTerms)
               if getattr(terms, f.name) and not getattr(available, f.name)]
    if missing:
        raise ValueError(f"loss terms {missing} are switched on but the model output has no inputs for them")
    if terms.rec and images is None:
        raise ValueError("L_rec needs the input images")

    official = isinstance(output, OfficialTrainOutput)
    parts: dict[str, torch.Tensor] = {}
    if terms.fuse:
        parts["fuse"] = segmentation_loss(output.fused_logits, labels, ignore_label)
    if terms.deep_supervision:
        parts["deep_supervision"] = deep_supervision_loss(output.deep_supervision_logits, labels, ignore_label)
    if terms.reg:
        parts["reg"] = regulariser_loss(output.modality_logits, labels, ignore_label)
    if terms.ana:
        t = output.anatomy_temperature if output.anatomy_temperature is not None else DEFAULT_TEMPERATURE
        parts["ana"] = anatomical_contrastive_loss(output.anatomy, t, ssim_c1, ssim_c2, windowed=official)
    if terms.mod:
        t = output.modality_temperature if output.modality_temperature is not None else DEFAULT_TEMPERATURE
        parts["mod"] = modality_contrastive_loss(output.modality_vectors, t)
    if terms.rec:
        parts["rec"] = reconstruction_loss(output.reconstructions, images, squared=official)
    if official and output.adain_means is not None:
        parts["kl"] = adain_kl_loss(output.adain_means, output.adain_scales)

    total = output.fused_logits.new_zeros((), dtype=torch.float32)
    weights = {"fuse": fuse_weight, "ana": alpha, "mod": alpha, "rec": alpha, "kl": OFFICIAL_KL_WEIGHT}
    for name, value in parts.items():
        total = total + weights.get(name, 1.0) * value
    logged = {name: value.detach() for name, value in parts.items()}
    logged["total"] = total.detach()
    return total, logged
