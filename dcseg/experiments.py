"""The experiment matrix: which runs the benchmark trains and evaluates, in one place.

A run is a model as published (``Run("rfnet")``) or DC-Seg with one of the paper's Table 2 variants
(``Run("dcseg", "no_rec")``). A variant is one entry here: the alpha-weighted loss terms it switches off. Everything
else follows from that entry: the loss terms (``dcseg.losses.ABLATIONS``), the modules the model leaves out because
only those terms train them (``dcseg.models.dcseg.ablation_overrides``), the run's paths and stages
(``dcseg.runs``), and Table 2's ✓/✗ columns. ``dvc.yaml`` cannot import Python, so its ``vars: runs`` list repeats
the matrix; tests/test_runs.py keeps the two equal, and the report stage depends on whole folders (``metrics``,
``logs``), so a new run needs no new report dependency.

A leaf module (no torch, no imports from the package): the layers above read it, it reads nothing.
"""

from __future__ import annotations

MAIN_MODELS = ("dcseg", "rfnet", "mmformer")  # Table 1's methods, in the order the pipeline lists them

# Every term of the training loss (dcseg.losses.LossTerms has one field each, in this order):
# L = w_fuse L_fuse + L_ds + L_reg + alpha (L_ana + L_mod + L_rec)
LOSS_TERMS = ("fuse", "deep_supervision", "reg", "ana", "mod", "rec")

# the terms Table 2 of the paper has a column for
TABLE2_TERMS = ("ana", "mod", "rec", "reg")

# Table 2's rows, in the paper's order: the terms each variant switches off ("full" keeps them all)
VARIANTS: dict[str, frozenset[str]] = {
    "full": frozenset(),
    "no_contrastive": frozenset({"ana", "mod"}),
    "no_ana": frozenset({"ana"}),
    "no_mod": frozenset({"mod"}),
    "no_rec": frozenset({"rec"}),
    "no_reg": frozenset({"reg"}),
}
VARIANT_MODEL = "dcseg"  # the variants are DC-Seg's

# Table 2's "full" row is DC-Seg as published: its main runs (every seed), not a run of its own
FULL = "full"
# the variants that are runs of their own (every Table 2 row but "full"), in the paper's order
ABLATED_VARIANTS = tuple(v for v in VARIANTS if v != FULL)

# The seed dimension (params.yaml ``seeds``): replicate r of a run trains with the run's own seed + r, so r = 0 is the
# profile's seed (the authors' own in the paper profile). The main runs take ``seeds.main``, the variants
# ``seeds.ablation`` (fewer, where the budget forces it).
SEED_LISTS = ("main", "ablation")


def run_matrix(seeds: dict) -> tuple[tuple[str, str | None, int], ...]:
    """Every run of the matrix as (model, variant or None, seed index), in the pipeline's order: each main model
    under each of ``seeds["main"]``, then each ablated variant under each of ``seeds["ablation"]``."""
    return tuple([(model, None, r) for model in MAIN_MODELS for r in seeds["main"]]
                 + [(VARIANT_MODEL, variant, r) for variant in ABLATED_VARIANTS for r in seeds["ablation"]])


def term_on(variant: str, term: str) -> bool:
    """Whether a Table 2 variant trains with ``term`` (one of ``LOSS_TERMS``)."""
    return term not in VARIANTS[variant]


def run_name(model: str, variant: str | None, seed: int = 0) -> str:
    """``rfnet_seed0`` or ``dcseg_no_rec_seed1``: the name of the run's folders and files."""
    return f"{model if variant is None else f'{model}_{variant}'}_seed{seed}"
