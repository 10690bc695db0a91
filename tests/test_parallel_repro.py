"""scripts/parallel_repro.py: how many jobs, how many threads each, and in which order the runs go.

The whole script runs end to end in tests/test_dvc_pipeline.py (the tiny pipeline is reproduced through it)."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from dcseg.runs import matrix_runs

REPO = Path(__file__).resolve().parent.parent

# scripts/ is not a package: load the module by path, as tests/test_bootstrap.py does.
_spec = importlib.util.spec_from_file_location("parallel_repro", REPO / "scripts" / "parallel_repro.py")
parallel_repro = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parallel_repro)


def _params(**models) -> dict:
    return {"profile": "cpu", "seeds": {"main": [0, 1], "ablation": [0]}, "profiles": {"cpu": {
        "train": {"steps": 100, "device": "cpu"}, "ablation": {"steps": 10},
        "models": {"dcseg": {"crop": 24}, "rfnet": {"crop": 24}, "mmformer": {"crop": 32}, **models}}}}


@pytest.mark.parametrize("env, cpus, runs, cuda, expected", [
    ({}, 2, 9, False, 2),             # one job per CPU
    ({}, 16, 9, False, 9),            # never more jobs than runs
    ({}, 1, 9, False, 1),
    ({}, 16, 9, True, 1),             # runs on one GPU would share it: one at a time
    ({"REPRO_JOBS": "3"}, 2, 9, True, 3),  # the user's choice stands
])
def test_job_count(env, cpus, runs, cuda, expected):
    assert parallel_repro.job_count(env, cpus, runs, cuda) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_job_count_is_refused_naming_the_variable_and_the_value(value):
    with pytest.raises(SystemExit, match=rf"REPRO_JOBS='{value}'.*positive integer"):
        parallel_repro.job_count({"REPRO_JOBS": value}, 2, 9, False)


@pytest.mark.parametrize("env, expected", [({}, []), ({"REPRO_ALLOW_MISSING": "0"}, []),
                                           ({"REPRO_ALLOW_MISSING": "1"}, ["--allow-missing"])])
def test_allow_missing_is_passed_to_dvc_only_when_asked(env, expected):
    assert parallel_repro.repro_flags(env) == expected


def test_a_bad_allow_missing_value_is_refused_naming_the_variable_and_the_value():
    with pytest.raises(SystemExit, match=r"REPRO_ALLOW_MISSING='yes'.*0 or 1"):
        parallel_repro.repro_flags({"REPRO_ALLOW_MISSING": "yes"})


@pytest.mark.parametrize("env, cpus, jobs, expected", [
    ({}, 2, 2, "1"), ({}, 16, 9, "1"), ({}, 16, 4, "4"), ({}, 1, 2, "1"), ({"OMP_NUM_THREADS": "2"}, 2, 2, "2"),
])
def test_threads_per_job_share_the_cpus_unless_the_user_set_them(env, cpus, jobs, expected):
    assert parallel_repro.threads_per_job(env, cpus, jobs) == expected


def test_the_queue_holds_every_run_and_seed_seed_by_seed_largest_training_first():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = [run.name for run in parallel_repro.queue(params)]
    assert sorted(names) == sorted(run.name for run in matrix_runs(params))
    main, ablation = params["seeds"]["main"], params["seeds"]["ablation"]
    assert len(names) == 3 * len(main) + 5 * len(ablation)
    # the default CPU profile: per seed, mmFormer (32^3 crops) first, then the 24^3 runs of equal length in matrix
    # order; the variants after every main run
    expected = [f"{m}_seed{r}" for r in main for m in ("mmformer", "dcseg", "rfnet")]
    assert names[:3 * len(main)] == expected
    assert names[3 * len(main):] == [run.name for run in matrix_runs(params) if run.is_ablation]


def test_the_cost_follows_the_training_stages_precedence():
    # a model entry's steps override the protocol's; the ablation schedule overrides both
    params = _params(rfnet={"crop": 24, "steps": 1000})
    assert parallel_repro.training_cost(params, "rfnet", False) == 1000 * 24 ** 3
    assert parallel_repro.training_cost(params, "dcseg", False) == 100 * 24 ** 3
    assert parallel_repro.training_cost(params, "dcseg", True) == 10 * 24 ** 3
    names = [run.name for run in parallel_repro.queue(params)]
    assert names[:6] == ["rfnet_seed0", "mmformer_seed0", "dcseg_seed0", "rfnet_seed1", "mmformer_seed1",
                         "dcseg_seed1"]
    assert names[-5:] == [f"dcseg_{v}_seed0" for v in ("no_contrastive", "no_ana", "no_mod", "no_rec", "no_reg")]


def test_an_explicit_device_needs_no_probe():
    assert parallel_repro.trains_on_cuda(_params()) is False
    params = _params()
    params["profiles"]["cpu"]["train"]["device"] = "cuda:0"
    assert parallel_repro.trains_on_cuda(params) is True


def test_the_wmh_pipeline_is_chosen_by_its_folder_and_queues_its_own_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    assert parallel_repro.pipeline({}) == ("", Path("params.yaml"))
    prefix, params_file = parallel_repro.pipeline({"REPRO_PIPELINE": "wmh"})
    assert prefix == "wmh/dvc.yaml:" and params_file == Path("wmh/params.yaml")
    params = yaml.safe_load(params_file.read_text())
    runs = parallel_repro.queue(params)
    # the three models under every WMH seed, no Table 2 variant
    assert params["seeds"]["ablation"] == [] and params["seeds"]["main"]
    assert {r.name for r in runs} == {f"{m}_seed{s}" for m in ("dcseg", "rfnet", "mmformer")
                                      for s in params["seeds"]["main"]}
    with pytest.raises(SystemExit, match="REPRO_PIPELINE='nowhere'"):
        parallel_repro.pipeline({"REPRO_PIPELINE": "nowhere"})
