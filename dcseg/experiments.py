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

# every run of the matrix as (model, variant or None), in the pipeline's order
RUNS: tuple[tuple[str, str | None], ...] = tuple(
    [(model, None) for model in MAIN_MODELS] + [(VARIANT_MODEL, variant) for variant in VARIANTS])


def term_on(variant: str, term: str) -> bool:
    """Whether a Table 2 variant trains with ``term`` (one of ``LOSS_TERMS``)."""
    return term not in VARIANTS[variant]


def run_name(model: str, variant: str | None) -> str:
    """``rfnet`` or ``dcseg_no_rec``: the name of the run's stages, folders and files."""
    return model if variant is None else f"{model}_{variant}"
