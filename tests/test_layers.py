"""The package's layers: every import runs down (or within a layer), and the report's statistics and tables load
without torch."""

import ast
import subprocess
import sys

from .conftest import REPO

# lowest first; a module may import from its own layer or any lower one
LAYERS = [
    ("leaves", ("dcseg", "dcseg.experiments", "dcseg.errors", "dcseg.config", "dcseg.validate", "dcseg.io",
                "dcseg.metrics", "dcseg.wmh_metrics", "dcseg.disentanglement", "dcseg.data.errors")),
    ("data and devices", ("dcseg.data", "dcseg.subsets", "dcseg.tasks", "dcseg.figures", "dcseg.hardware")),
    ("networks", ("dcseg.models", "baselines")),
    ("registry and losses", ("dcseg.registry", "dcseg.losses")),
    ("files, inference, processes", ("dcseg.checkpoint", "dcseg.inference", "dcseg.distributed")),
    ("training and evaluation", ("dcseg.training", "dcseg.convergence", "dcseg.evaluation")),
    ("runs, report, stage helpers", ("dcseg.runs", "dcseg.report", "dcseg.representations", "dcseg.cli")),
]


def layer_of(module: str) -> int:
    """The layer of the longest matching prefix."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def modules():
    for path in sorted([*(REPO / "dcseg").rglob("*.py"), *(REPO / "baselines").rglob("*.py")]):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def test_every_import_runs_down_the_layers():
    upward = []
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in ("dcseg", "baselines") and layer_of(target) > layer_of(name):
                    upward.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                                  f"({LAYERS[layer_of(target)][0]}), line {node.lineno}")
    assert upward == []


def test_the_report_statistics_and_tables_load_without_torch():
    code = ("import sys\nimport dcseg.report.statistics, dcseg.report.tables, dcseg.report.inputs, "
            "dcseg.report.figures, dcseg.runs\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
