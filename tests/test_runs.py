"""Run naming and stage arguments: the three models and DC-Seg's Table 2 variants."""

from pathlib import Path

import pytest

from dcseg.config import ConfigError
from dcseg.losses import ABLATIONS
from dcseg.models.dcseg import ablation_overrides
from dcseg.experiments import ABLATED_VARIANTS, MAIN_MODELS, VARIANT_MODEL, VARIANTS
from dcseg.runs import ABLATION_VARIANTS, Run, expand_profile_keys, load_run_params, matrix_runs, parse_run_args

from .conftest import REPO


def test_variants_are_the_paper_table2_rows():
    assert ABLATION_VARIANTS == ("full", "no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg")


def test_paths_of_main_and_variant_runs():
    assert Run("rfnet").model_dir == Path("models/rfnet_seed0")
    assert Run("dcseg", seed=2).metrics_json == Path("metrics/dcseg_seed2.json") and not Run("dcseg").is_ablation
    v = Run("dcseg", "no_rec", 1)
    assert v.name == "dcseg_no_rec_seed1" and v.group == "dcseg_no_rec" and v.is_ablation
    assert v.model_dir == Path("models/dcseg_no_rec_seed1")
    assert v.log_dir == Path("logs/dcseg_no_rec_seed1")
    assert v.checkpoint == Path("checkpoints/dcseg_no_rec_seed1/last.pt")
    assert v.cases_csv == Path("metrics/dcseg_no_rec_seed1_cases.csv")


def test_full_is_the_main_dcseg_run_and_seed_indices_are_checked():
    with pytest.raises(ConfigError, match="'full' row is the main DC-Seg run"):
        Run("dcseg", "full")
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ConfigError, match="seed index"):
            Run("rfnet", seed=bad)


@pytest.mark.parametrize("seeds, message", [
    ({"main": [0, 1]}, "exactly the lists"),
    ({"main": [], "ablation": [0]}, "seeds.main' is empty"),
    ({"main": [0, 0], "ablation": []}, "distinct integers"),
    ({"main": [0, -1], "ablation": []}, "distinct integers"),
    ({"main": [0], "ablation": "0"}, "seeds.ablation"),
])
def test_bad_seed_lists_fail_naming_the_key(seeds, message):
    with pytest.raises(ConfigError, match=message):
        matrix_runs({"seeds": seeds})


def test_the_matrix_is_every_model_per_main_seed_and_every_variant_per_ablation_seed():
    runs = matrix_runs({"seeds": {"main": [0, 3], "ablation": [1]}})
    assert [run.name for run in runs] == (
        ["dcseg_seed0", "dcseg_seed3", "rfnet_seed0", "rfnet_seed3", "mmformer_seed0", "mmformer_seed3"]
        + [f"dcseg_{v}_seed1" for v in ("no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg")])
    assert matrix_runs({"seeds": {"main": [0], "ablation": []}}) == (Run("dcseg"), Run("rfnet"), Run("mmformer"))


def _dvc_yaml() -> dict:
    import yaml

    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def _resolved_stages(seeds=None, pipeline: str = ".") -> dict:
    """The stages of ``pipeline``/dvc.yaml as DVC resolves them (matrices expanded) in a copy whose params.yaml has
    ``seeds``."""
    import os
    import shutil
    import tempfile

    import yaml
    from dvc.repo import Repo

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("dvc.yaml", "params.yaml"):
            shutil.copy(REPO / pipeline / name, tmp)
        (Path(tmp) / ".dvc").mkdir()
        (Path(tmp) / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
        if seeds is not None:
            params = yaml.safe_load((Path(tmp) / "params.yaml").read_text())
            params["seeds"] = seeds
            (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(params))
        with Repo(tmp) as repo:
            return {st.name: {"cmd": st.cmd, "outs": [str(o.def_path) for o in st.outs],
                              "deps": [str(d.def_path) for d in st.deps],
                              "params": sorted(k for d in st.deps if hasattr(d, "params") for k in (d.params or []))}
                    for st in repo.index.stages}


@pytest.mark.parametrize("seeds", [None, {"main": [0, 2], "ablation": [1, 4]}])
def test_every_run_and_seed_has_its_stages_in_dvc_yaml_with_matching_arguments(seeds):
    """dvc.yaml's matrices, as DVC expands them, and dcseg.runs agree: stage names, command arguments, output
    paths, the model file each evaluation reads; and no other run stage exists."""
    import yaml

    stages = _resolved_stages(seeds)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    runs = matrix_runs({"seeds": seeds} if seeds else params)
    run_stages = {name for name in stages if name.startswith(("train", "evaluate"))}
    assert run_stages == {run.train_stage for run in runs} | {run.evaluate_stage for run in runs}
    for run in runs:
        train, evaluate = stages[run.train_stage], stages[run.evaluate_stage]
        assert train["cmd"] == " ".join(["python stages/train.py", *run.stage_args()])
        assert evaluate["cmd"] == " ".join(["python stages/evaluate.py", *run.stage_args()])
        for stage in ("train", "evaluate"):
            argv = (train if stage == "train" else evaluate)["cmd"].split()[2:]
            assert parse_run_args(argv, stage) == (run, [])
        assert train["outs"] == [str(run.model_dir), str(run.log_dir)]
        assert evaluate["outs"] == [str(run.cases_csv), str(run.metrics_json)]
        assert f"{run.model_dir}/model.pt" in evaluate["deps"]
        # only DC-Seg's runs read `loss`; only the variants read the ablation schedule
        assert ("loss" in train["params"]) == (run.model == "dcseg")
        assert ("profiles.${profile}.ablation" in _dvc_yaml()["stages"][run.train_stage.split("@")[0]]["params"]
                ) == run.is_ablation
    assert "metrics" not in _dvc_yaml()["stages"]["evaluate"]  # per-run detail stays out of `dvc exp show`
    plots = {next(iter(p)) for p in _dvc_yaml()["plots"]}
    assert plots == {f"{Run(m).log_dir}/live/plots/metrics" for m in ("dcseg", "rfnet", "mmformer")}


def test_dvc_yaml_lists_repeat_the_matrix():
    lists = {k: v for entry in _dvc_yaml()["vars"] for k, v in entry.items()}
    assert tuple(lists["models"]) == MAIN_MODELS
    assert tuple(lists["variants"]) == ABLATED_VARIANTS
    assert tuple(lists["baselines"]) == tuple(m for m in MAIN_MODELS if m != VARIANT_MODEL)


@pytest.mark.parametrize("pipeline", [".", "wmh"])
def test_committed_lock_names_only_stages_of_dvc_yaml(pipeline):
    """DVC keeps the lock entries of a stage that left dvc.yaml (a seed dropped from the matrix, say); stale ones
    would mislead a reader of dvc.lock."""
    import yaml

    lock = REPO / pipeline / "dvc.lock"
    if not lock.is_file():
        pytest.skip(f"no {pipeline}/dvc.lock in this checkout")
    assert set(yaml.safe_load(lock.read_text())["stages"]) <= set(_resolved_stages(pipeline=pipeline))


@pytest.mark.parametrize("variant", ABLATED_VARIANTS)
def test_variant_train_options_switch_terms_and_modules(variant):
    options = Run("dcseg", variant).train_options()
    terms = ABLATIONS[variant]
    assert options["terms"]["ana"] == terms.ana and options["terms"]["rec"] == terms.rec
    assert options["overrides"] == ablation_overrides(variant) and options["ablation"]
    assert Run("dcseg").train_options() == {"overrides": None, "terms": None, "ablation": False}


def test_parse_run_args():
    assert parse_run_args(["rfnet", "a.b=1"], "train") == (Run("rfnet"), ["a.b=1"])
    assert parse_run_args(["dcseg", "--ablation", "no_reg", "x=2"], "train") == (Run("dcseg", "no_reg"), ["x=2"])
    assert parse_run_args(["dcseg", "--ablation=no_ana", "--seed", "2"], "evaluate")[0] == Run("dcseg", "no_ana", 2)
    assert parse_run_args(["model=rfnet", "seed=1"], "train") == (Run("rfnet", seed=1), [])
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
    (["dcseg", "--seed"], "needs a seed index"),
    (["dcseg", "--seed", "-1"], "seed index '-1'"),
    (["dcseg", "--ablation", "full"], "main DC-Seg run"),
])
def test_bad_arguments_fail_with_a_clear_message(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_run_args(argv, "train")


def test_ablation_runs_take_the_profiles_ablation_schedule():
    from dcseg.config import load_params
    from dcseg.training import train_settings

    cfg = load_params(["profiles.cpu.train.steps=11"], extra_keys={"profiles": {"cpu": {"ablation": {"steps": 7}}}})
    main = train_settings(cfg, "dcseg", **Run("dcseg").train_options())
    ablation = train_settings(cfg, "dcseg", **Run("dcseg", "no_rec").train_options())
    assert main.steps == 11 and ablation.steps == 7 and main.crop == ablation.crop
    assert ablation.terms["rec"] is False and ablation.overrides["with_reconstruction"] is False
    with pytest.raises(ConfigError, match="profiles.cpu.ablation has unknown key"):
        train_settings(load_params(extra_keys={"profiles": {"cpu": {"ablation": {"epochs": 3}}}}), "dcseg",
                             ablation=True)


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_the_variants_train_like_the_main_dcseg_run(profile):
    """Table 2 is trained like Table 1: in both profiles a variant's settings differ from the main DC-Seg run's
    only in what makes it the variant (its loss terms, left-out modules and name)."""
    import dataclasses

    from dcseg.config import load_params
    from dcseg.training import train_settings

    cfg = load_params([f"profile={profile}"])
    main = dataclasses.asdict(train_settings(cfg, "dcseg", **Run("dcseg").train_options()))
    for variant in ABLATED_VARIANTS:
        run = Run("dcseg", variant)
        other = dataclasses.asdict(train_settings(cfg, "dcseg", variant=variant, **run.train_options()))
        assert {k for k in main if main[k] != other[k]} == {"variant", "terms", "overrides"}


def test_the_report_depends_on_every_run_through_whole_folders():
    """The report stage's deps follow from the matrix: the folders every run writes into, not a list of files."""
    pipeline = _dvc_yaml()
    deps = pipeline["stages"]["report"]["deps"]
    runs = matrix_runs({"seeds": {"main": [0, 1], "ablation": [0]}})
    folders = {str(run.metrics_json.parent) for run in runs} | {str(run.log_dir.parent) for run in runs}
    assert folders == {"metrics", "logs"} and folders <= set(deps)
    per_run = [d for d in deps if d.startswith(("metrics/", "logs/"))]
    assert per_run == []  # no hand-kept list to forget a run in
    # seed 0 of each main model: the example figure runs them
    assert [d for d in deps if d.startswith("models/")] == [f"{Run(m).model_dir}/model.pt" for m in MAIN_MODELS]


def test_ablation_terms_and_model_options_follow_from_one_matrix_entry():
    for variant, off in VARIANTS.items():
        terms = ABLATIONS[variant]
        assert {t for t in ("ana", "mod", "rec", "reg") if not getattr(terms, t)} == set(off)
        assert ablation_overrides(variant)["with_reconstruction"] == ("rec" not in off)
    import ast
    tree = ast.parse((REPO / "dcseg/models/dcseg.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "dcseg.losses" not in imported  # the model no longer reads the loss module for the ablation table


def test_the_quick_profiles_overrides_name_real_keys_and_give_one_seed_of_each_model():
    """scripts/quick.sh: its `-S` overrides apply to params.yaml (a typo would fail here, not after an hour), train
    one seed of each main model and no variant, and shorten the schedule."""
    import re

    from dcseg.config import load_params
    from dcseg.training import train_settings

    overrides = re.findall(r"-S '?([^' \n]+)'?", (REPO / "scripts" / "quick.sh").read_text())
    assert overrides, "no -S overrides found in scripts/quick.sh"
    cfg = load_params(overrides, path=REPO / "params.yaml")
    assert matrix_runs(cfg) == (Run("dcseg"), Run("rfnet"), Run("mmformer"))
    default = load_params(path=REPO / "params.yaml")
    assert train_settings(cfg, "rfnet").steps < train_settings(default, "rfnet").steps
