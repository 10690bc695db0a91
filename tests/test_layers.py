"""The package's layers: every import runs down (or within a layer), the report's statistics and tables load
without torch, and every DVC stage depends on the code its script imports."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def imports(path: Path):
    """(line, module, names) of every absolute import in ``path``, those inside functions included: ``import a.b``
    gives ("a.b", ()), ``from a import b, c`` gives ("a", ("b", "c"))."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, tuple(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()


def test_every_import_runs_down_the_layers():
    upward = []
    for name, path in modules():
        for lineno, target, _ in imports(path):
            if target.split(".")[0] in ("dcseg", "baselines") and layer_of(target) > layer_of(name):
                upward.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]}), line {lineno}")
    assert upward == []


def test_the_report_statistics_and_tables_load_without_torch():
    code = ("import sys\nimport dcseg.report.statistics, dcseg.report.tables, dcseg.report.inputs, "
            "dcseg.report.figures, dcseg.runs\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _module_file(module: str) -> Path | None:
    path = REPO.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_files(script: Path) -> set[Path]:
    """Every file of dcseg/ and baselines/ that ``script`` imports, directly or through others, counting the imports
    inside functions too (a stage may call any of them): an over-approximation, which is the safe side for DVC."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for _, module, names in imports(path):
            for name in (module, *(f"{module}.{n}" for n in names)):
                parts = name.split(".")
                if parts[0] not in ("dcseg", "baselines"):
                    continue
                for i in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                    found = _module_file(".".join(parts[:i]))
                    if found is not None:
                        todo.append(found)
    return seen


def stages_of(dvc_yaml: Path):
    for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        script = next(word for word in stage["cmd"].split() if word.endswith(".py"))
        deps = [(dvc_yaml.parent / dep).resolve() for dep in stage.get("deps", []) if "$" not in dep]
        yield name, (dvc_yaml.parent / script).resolve(), deps


@pytest.mark.parametrize("dvc_yaml", ["dvc.yaml", "wmh/dvc.yaml"])
def test_every_stage_depends_on_the_code_its_script_imports(dvc_yaml):
    """A stage whose deps miss a module it runs would keep stale results when that module changes."""
    missing = []
    for name, script, deps in stages_of(REPO / dvc_yaml):
        for path in sorted(imported_files(script)):
            if not any(path == dep or dep in path.parents for dep in deps):
                missing.append(f"{name}: {path.relative_to(REPO)}")
    assert missing == []


def test_imported_files_follows_imports_through_modules_and_functions(tmp_path, monkeypatch):
    import tests.test_layers as layers

    for path, text in {"dcseg/__init__.py": "", "dcseg/a.py": "from dcseg import b\n",
                       "dcseg/b.py": "def f():\n    import dcseg.sub.c\n", "dcseg/sub/__init__.py": "",
                       "dcseg/sub/c.py": "import numpy\n", "dcseg/unused.py": "",
                       "stage.py": "import os\nfrom dcseg.a import x\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.setattr(layers, "REPO", tmp_path)
    found = {str(p.relative_to(tmp_path)) for p in imported_files(tmp_path / "stage.py")}
    assert found == {"stage.py", "dcseg/__init__.py", "dcseg/a.py", "dcseg/b.py", "dcseg/sub/__init__.py",
                     "dcseg/sub/c.py"}
