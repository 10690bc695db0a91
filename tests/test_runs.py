"""Run naming and stage arguments: the three models and DC-Seg's Table 2 variants."""

from pathlib import Path

import pytest

from dcseg.config import ConfigError
from dcseg.losses import ABLATIONS
from dcseg.models.dcseg import ablation_overrides
from dcseg.experiments import VARIANTS
from dcseg.runs import (ABLATION_VARIANTS, ALL_RUNS, MAIN_RUNS, Run, expand_profile_keys, load_run_params,
                        parse_run_args)

from .conftest import REPO


def test_variants_are_the_paper_table2_rows():
    assert ABLATION_VARIANTS == ("full", "no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg")


def test_paths_of_main_and_variant_runs():
    assert Run("rfnet").model_dir == Path("models/rfnet")
    assert Run("dcseg").metrics_json == Path("metrics/dcseg.json") and not Run("dcseg").is_ablation
    assert Run("dcseg", "full").name == "dcseg_full" and Run("dcseg", "full").is_ablation
    v = Run("dcseg", "no_rec")
    assert v.name == "dcseg_no_rec"
    assert v.model_dir == Path("models/dcseg_no_rec")
    assert v.checkpoint == Path("checkpoints/dcseg_no_rec/last.pt")
    assert v.cases_csv == Path("metrics/dcseg_no_rec_cases.csv")


def _dvc_yaml() -> dict:
    import yaml

    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_run_has_its_stages_in_dvc_yaml_with_matching_arguments():
    """dvc.yaml's runs (the ``vars`` that train and evaluate iterate over) and dcseg.runs agree: stage names,
    command arguments and output paths."""
    pipeline = _dvc_yaml()
    items = next(v["runs"] for v in pipeline["vars"] if "runs" in v)
    runs = list(ALL_RUNS)  # the matrix (dcseg.experiments), which dvc.yaml's vars repeat
    assert list(items) == [run.name for run in runs]
    for stage in ("train", "evaluate"):
        assert pipeline["stages"][stage]["foreach"] == "${runs}"
        for run in runs:
            assert getattr(run, f"{stage}_stage") == f"{stage}@{run.name}"
            argv = [items[run.name]["model"]] + items[run.name]["args"].split()
            assert parse_run_args(argv, stage) == (run, [])
    # = Run.model_dir (cached) and Run.log_dir (git-tracked)
    assert pipeline["stages"]["train"]["do"]["outs"] == ["models/${key}", {"logs/${key}": {"cache": False}}]
    assert {str(run.model_dir) for run in runs} == {f"models/{run.name}" for run in runs}
    assert {str(run.log_dir) for run in runs} == {f"logs/{run.name}" for run in runs}
    assert pipeline["stages"]["evaluate"]["do"]["outs"] == [{"metrics/${key}_cases.csv": {"cache": False}},
                                                            {"metrics/${key}.json": {"cache": False}}]
    assert "metrics" not in pipeline["stages"]["evaluate"]["do"]  # per-run detail stays out of `dvc exp show`
    plots = {next(iter(p)) for p in pipeline["plots"]}
    assert plots == {f"{Run(m).log_dir}/live/plots/metrics" for m in ("dcseg", "rfnet", "mmformer")}


def test_committed_lock_names_only_stages_of_dvc_yaml():
    """DVC keeps the lock entries of a stage that left dvc.yaml; stale ones would mislead a reader of dvc.lock."""
    import yaml

    pipeline = _dvc_yaml()
    runs = next(v["runs"] for v in pipeline["vars"] if "runs" in v)
    names = {f"{name}@{key}" if "foreach" in stage else name
             for name, stage in pipeline["stages"].items() for key in (runs if "foreach" in stage else [None])}
    lock = REPO / "dvc.lock"
    if not lock.is_file():
        pytest.skip("no dvc.lock in this checkout")
    assert set(yaml.safe_load(lock.read_text())["stages"]) <= names


@pytest.mark.parametrize("variant", ABLATION_VARIANTS)
def test_variant_train_options_switch_terms_and_modules(variant):
    options = Run("dcseg", variant).train_options()
    terms = ABLATIONS[variant]
    assert options["terms"]["ana"] == terms.ana and options["terms"]["rec"] == terms.rec
    assert options["overrides"] == ablation_overrides(variant) and options["ablation"]
    assert Run("dcseg").train_options() == {"overrides": None, "terms": None, "ablation": False}


def test_parse_run_args():
    assert parse_run_args(["rfnet", "a.b=1"], "train") == (Run("rfnet"), ["a.b=1"])
    assert parse_run_args(["dcseg", "--ablation", "no_reg", "x=2"], "train") == (Run("dcseg", "no_reg"), ["x=2"])
    assert parse_run_args(["dcseg", "--ablation=full"], "evaluate")[0] == Run("dcseg", "full")
    # the Hydra-like form
    assert parse_run_args(["model=rfnet", "train.steps=10"], "train") == (Run("rfnet"), ["train.steps=10"])
    assert parse_run_args(["model=dcseg", "ablation=no_mod"], "train") == (Run("dcseg", "no_mod"), [])


def test_profile_shorthand_names_the_selected_profile():
    assert expand_profile_keys(["train.steps=10", "loss.alpha=0.2"], "cpu") == ["profiles.cpu.train.steps=10",
                                                                               "loss.alpha=0.2"]
    assert expand_profile_keys(["models.rfnet.crop=96"], "paper") == ["profiles.paper.models.rfnet.crop=96"]
    cfg = load_run_params(["train.steps=10", "evaluate.overlap=0.25"])
    assert cfg.profiles.cpu.train.steps == 10 and cfg.profiles.cpu.evaluate.overlap == 0.25
    # a profile= override applies first, wherever it stands, so the shorthand names the profile actually used
    cfg = load_run_params(["models.rfnet.crop=96", "profile=paper"])
    assert cfg.profile == "paper" and cfg.profiles.paper.models.rfnet.crop == 96
    assert cfg.profiles.cpu.models.rfnet.crop != 96
    with pytest.raises(ConfigError, match="profiles.cpu.train.stesp"):  # a typo still fails with its full name
        load_run_params(["train.stesp=10"])


@pytest.mark.parametrize("argv, message", [
    ([], "usage"),
    (["train.steps=3"], "usage"),
    (["unet"], "unknown model 'unet'"),
    (["rfnet", "--ablation", "no_rec"], "DC-Seg's"),
    (["dcseg", "--ablation", "no_dice"], "unknown ablation variant 'no_dice'"),
    (["dcseg", "--ablation"], "needs a variant name"),
    (["dcseg", "--steps"], "unexpected argument '--steps'"),
])
def test_bad_arguments_fail_with_a_clear_message(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_run_args(argv, "train")


def test_ablation_runs_take_the_profiles_ablation_schedule():
    from dcseg.config import load_params
    from dcseg.training import train_settings

    cfg = load_params(["profiles.cpu.ablation.steps=7", "profiles.cpu.train.steps=11"])
    main = train_settings(cfg, "dcseg", **Run("dcseg").train_options())
    ablation = train_settings(cfg, "dcseg", **Run("dcseg", "no_rec").train_options())
    assert main.steps == 11 and ablation.steps == 7 and main.crop == ablation.crop
    assert ablation.terms["rec"] is False and ablation.overrides["with_reconstruction"] is False
    with pytest.raises(ConfigError, match="profiles.cpu.ablation has unknown key"):
        train_settings(load_params(extra_keys={"profiles": {"cpu": {"ablation": {"epochs": 3}}}}), "dcseg",
                             ablation=True)


def test_the_report_depends_on_every_run_through_whole_folders():
    """The report stage's deps follow from the matrix: the folders every run writes into, not a list of files."""
    pipeline = _dvc_yaml()
    deps = pipeline["stages"]["report"]["deps"]
    folders = {str(run.metrics_json.parent) for run in ALL_RUNS} | {str(run.log_dir.parent) for run in ALL_RUNS}
    assert folders == {"metrics", "logs"} and folders <= set(deps)
    per_run = [d for d in deps if d.startswith(("metrics/", "logs/"))]
    assert per_run == []  # no hand-kept list to forget a run in
    assert [d for d in deps if d.startswith("models/")] == [f"{run.model_dir}/model.pt" for run in MAIN_RUNS]
    # and nothing but the matrix's runs write into those folders
    outs = [next(iter(o)) if isinstance(o, dict) else o for s in ("train", "evaluate")
            for o in pipeline["stages"][s]["do"]["outs"]]
    assert outs == ["models/${key}", "logs/${key}", "metrics/${key}_cases.csv", "metrics/${key}.json"]


def test_ablation_terms_and_model_options_follow_from_one_matrix_entry():
    for variant, off in VARIANTS.items():
        terms = ABLATIONS[variant]
        assert {t for t in ("ana", "mod", "rec", "reg") if not getattr(terms, t)} == set(off)
        assert ablation_overrides(variant)["with_reconstruction"] == ("rec" not in off)
    import ast
    tree = ast.parse((REPO / "dcseg/models/dcseg.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "dcseg.losses" not in imported  # the model no longer reads the loss module for the ablation table
