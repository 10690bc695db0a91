"""How well a DC-Seg run disentangles anatomy from modality: the numbers behind the paper's Fig. 3.

The paper shows 2-D embeddings only (anatomy aligned across modalities, modality codes clustered by modality). The
quantities here say the same thing as numbers, per run, over the test cases:

- modality identification accuracy: each modality code is classified by the nearest modality centroid (cosine, the
  similarity L_mod uses), the centroids computed from the other cases only (leave one case out);
- cross-modality case retrieval (top-1): for each case and modality, the most similar anatomical representation
  among the *other* modalities of all test cases, by the run's own L_ana similarity; a hit when it is the same case
  (chance: 1 / number of cases);
- the mean similarity of same-case and of different-case anatomy pairs, both across modalities.

Items are indexed ``k = case * M + modality`` (``item_labels``); similarities are ``[K, K]`` matrices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def item_labels(n_cases: int, n_modalities: int) -> tuple[np.ndarray, np.ndarray]:
    """(case, modality) of each of the ``n_cases * n_modalities`` items, case-major."""
    case, modality = np.divmod(np.arange(n_cases * n_modalities), n_modalities)
    return case, modality


def cosine_similarity(vectors: np.ndarray) -> np.ndarray:
    """``[K, D]`` -> ``[K, K]`` cosine similarities (a zero vector's norm floored at 1e-6, as in L_mod)."""
    vectors = np.asarray(vectors, float)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    return unit @ unit.T


def _check(similarity: np.ndarray, case: np.ndarray, modality: np.ndarray) -> None:
    k = len(case)
    if similarity.shape != (k, k) or len(modality) != k:
        raise ValueError(f"similarity {similarity.shape} does not match {k} items")
    if len(np.unique(modality)) < 2:
        raise ValueError("cross-modality measures need at least 2 modalities")


def cross_modality_retrieval(similarity: np.ndarray, case: np.ndarray, modality: np.ndarray) -> float:
    """Share of items whose most similar item of another modality (any case) belongs to the same case. Ties go to
    the lowest index."""
    similarity, case, modality = np.asarray(similarity, float), np.asarray(case), np.asarray(modality)
    _check(similarity, case, modality)
    candidates = np.where(modality[:, None] != modality[None, :], similarity, -np.inf)
    return float(np.mean(case[np.argmax(candidates, axis=1)] == case))


def same_and_different_case_similarity(similarity: np.ndarray, case: np.ndarray,
                                       modality: np.ndarray) -> tuple[float, float | None]:
    """Mean similarity over cross-modality pairs of the same case, and over cross-modality pairs of different
    cases (None with a single case)."""
    similarity, case, modality = np.asarray(similarity, float), np.asarray(case), np.asarray(modality)
    _check(similarity, case, modality)
    across = modality[:, None] != modality[None, :]
    same = case[:, None] == case[None, :]
    different = similarity[across & ~same]
    return float(similarity[across & same].mean()), (float(different.mean()) if different.size else None)


def modality_identification(codes: np.ndarray) -> float:
    """Leave-one-case-out nearest-centroid accuracy of modality codes ``[N, M, D]`` (cosine to the centroids of the
    other ``N - 1`` cases). Ties go to the lowest modality index."""
    codes = np.asarray(codes, float)
    if codes.ndim != 3 or codes.shape[0] < 2:
        raise ValueError(f"expected codes [N >= 2, M, D], got shape {codes.shape}")
    n, m, _ = codes.shape
    hits = 0
    for held_out in range(n):
        centroids = np.delete(codes, held_out, axis=0).mean(axis=0)  # [M, D]
        both = cosine_similarity(np.concatenate([codes[held_out], centroids]))[:m, m:]  # [M items, M centroids]
        hits += int(np.sum(np.argmax(both, axis=1) == np.arange(m)))
    return hits / (n * m)


@dataclass(frozen=True)
class Disentanglement:
    """The Fig. 3 numbers of one run (see the module docstring)."""

    modality_identification: float | None  # None with a single case (no other case to build centroids from)
    case_retrieval: float
    chance_retrieval: float        # 1 / number of cases
    same_case_similarity: float
    different_case_similarity: float | None  # None with a single case
    cases: int
    modalities: int

    def as_dict(self) -> dict:
        return asdict(self)


def disentanglement(anatomy_similarity: np.ndarray, codes: np.ndarray) -> Disentanglement:
    """All the numbers from the run's anatomy similarity ``[N*M, N*M]`` (items case-major) and modality codes
    ``[N, M, D]``."""
    n, m, _ = np.asarray(codes).shape
    case, modality = item_labels(n, m)
    same, different = same_and_different_case_similarity(anatomy_similarity, case, modality)
    identification = modality_identification(codes) if n >= 2 else None
    return Disentanglement(identification, cross_modality_retrieval(anatomy_similarity, case, modality),
                           1.0 / n, same, different, n, m)


__all__ = ["item_labels", "cosine_similarity", "cross_modality_retrieval", "same_and_different_case_similarity",
           "modality_identification", "Disentanglement", "disentanglement"]
