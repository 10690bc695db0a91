"""What the report covers, shared by its inputs, statistics, tables and figures: our runs and the paper's names for
them, the tables' rows, and the paper's column orders (one definition each)."""

from __future__ import annotations

from dcseg.experiments import ABLATED_VARIANTS, TABLE2_TERMS
from dcseg.runs import ABLATION_VARIANTS
from dcseg.subsets import SUBSETS

# Our runs and the paper's names for them, in the paper's column order.
METHODS = {"rfnet": "RFNet", "mmformer": "mmFormer", "dcseg": "DC-Seg"}
PAPER_TABLE1_METHODS = ("RobustSeg", "RFNet", "mmFormer", "M3AE", "DC-Seg")
# The paper's modality columns; our channels (MODALITIES) put T1ce before T1.
PAPER_MODALITY_ORDER = ("flair", "t1", "t1ce", "t2")
# Table 2's rows ("full" is the main DC-Seg run; the others are ablation runs at the same schedule) and the variants
# compared against "full".
ABLATION_ROWS = ABLATION_VARIANTS
REMOVED_VARIANTS = ABLATED_VARIANTS  # dcseg.experiments: every Table 2 row but "full"
# The loss terms that Table 2 of the paper has a column for.
PAPER_TERMS = TABLE2_TERMS
# Table 1's rows: the 15 modality subsets, then their mean.
AVERAGE = "average"
ROWS = tuple(s.name for s in SUBSETS) + (AVERAGE,)
