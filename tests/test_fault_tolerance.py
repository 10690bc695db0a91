"""kill -9 in the middle of each stage, then `dvc repro` again: the pipeline completes and its metrics are
byte-identical to those of an uninterrupted run. Then the killed training and evaluation are forced to really run
again (a plain `dvc repro` restores outputs that DVC's cache already holds): they recompute the same outputs (the
training resumes from its checkpoint and ends bitwise equal), which also shows that two runs give identical results.

Runs the real dvc.yaml on a shrunken copy of the real params (5 cases at 5 mm, a few RFNet steps).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_dvc_pipeline import _dvc, _env, _ran, _set_params, repo_copy  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow
TARGET = "evaluate@rfnet-0"  # phantom -> preprocess -> train@rfnet-0 -> evaluate@rfnet-0
OUTPUTS = ("metrics/rfnet_seed0.json", "metrics/rfnet_seed0_cases.csv")


def _shrink(repo):
    _set_params(repo, **{
        "phantom.n_cases": 5, "phantom.voxel_size": 5.0, "preprocess.min_size": [32, 32, 32],
        "profiles.cpu.train.steps": 6, "profiles.cpu.train.steps_per_epoch": 2, "profiles.cpu.train.log_every": 1,
        "profiles.cpu.train.checkpoint_every": 1,
        "profiles.cpu.models.rfnet": {"width": "cpu", "crop": 32, "fuse_warmup_epochs": 1, "eval_patch": 32},
    })


def _outputs(repo) -> dict[str, bytes]:
    return {name: (repo / name).read_bytes() for name in OUTPUTS}


def _repro_killed_when(repo, stage: str, ready, what: str, timeout: float = 300.0, slow_saves: bool = False) -> str:
    """Start `dvc repro -f -s STAGE` (rerun just that stage), SIGKILL its whole process group once
    ``ready(log_text)`` holds; return the log. ``slow_saves``: every ``numpy.save`` in the stage's processes
    first sleeps 0.2 s, so a stage that writes its files in a fraction of a second stays long enough inside its
    temp folder for the kill to land there (a sitecustomize on PYTHONPATH; the code under test is unchanged)."""
    env = _env(PYTHONUNBUFFERED="1")
    if slow_saves:
        hook = repo.parent / "slow_saves"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(
            "import time\nimport numpy\n_save = numpy.save\n\n\n"
            "def _slow_save(*args, **kwargs):\n    time.sleep(0.2)\n    return _save(*args, **kwargs)\n\n\n"
            "numpy.save = _slow_save\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    log = repo / f"killed_{what}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-f", "-s", stage], cwd=repo, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while not ready(log.read_text()):
                if proc.poll() is not None:
                    raise AssertionError(f"dvc repro ended before the kill point ({what}):\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"kill point ({what}) not reached in {timeout} s")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{what}: the run was not killed (exit {proc.returncode})"
    return log.read_text()


def _has_entries(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def test_kill_9_in_every_stage_then_rerun_gives_identical_metrics(repo_copy):  # noqa: F811
    _shrink(repo_copy)
    _dvc(repo_copy, "repro", TARGET)
    reference = _outputs(repo_copy)
    summary = json.loads(reference["metrics/rfnet_seed0.json"])
    assert summary["n_cases"] >= 1 and set(summary["average"]["dice"]) == {"WT", "TC", "ET"}

    checkpoint = repo_copy / "checkpoints" / "rfnet_seed0" / "last.pt"
    kill_points = {  # what: (stage, ready(log_text), slow_saves), each one strictly inside its stage
        # the phantom and preprocess stages build their output in a temp folder and rename it at the end
        "phantom": ("phantom", lambda text: _has_entries(repo_copy / "data/raw/.phantom.tmp"), False),
        # (5 tiny cases take 0.1 s: numpy.save is slowed so the kill cannot miss that window)
        "preprocess": ("preprocess", lambda text: _has_entries(repo_copy / "data/.preprocessed.tmp"), True),
        # once a checkpoint exists, so the rerun resumes from it instead of starting over
        "train": ("train@rfnet-0", lambda text: "Running stage 'train@rfnet-0'" in text and checkpoint.is_file(), False),
        # the model is loaded and cases are being scored
        "evaluate": (TARGET, lambda text: "evaluate: rfnet_seed0 (" in text, False),
    }
    for what, (stage, ready, slow_saves) in kill_points.items():
        _repro_killed_when(repo_copy, stage, ready, what, slow_saves=slow_saves)
        # completes: DVC restores what its cache holds and reruns the rest; the training stage, whose logs/ output
        # is git-tracked (not in DVC's run cache), reruns and resumes from its checkpoint
        rerun = _dvc(repo_copy, "repro", TARGET)
        assert _outputs(repo_copy) == reference, f"metrics differ after a kill -9 during {what}"
        if what in ("phantom", "preprocess"):
            # (not forced again, to keep CI within its budget: the rerun above rebuilt their outputs, the phantom is
            # deterministic (tests/test_phantom.py) and preprocessing a pure function of its input)
            continue
        forced = _dvc(repo_copy, "repro", "--force", "--single-item", stage)  # recompute the killed stage itself
        assert _ran(forced.stdout) == [stage]
        if what == "train":
            assert "resuming rfnet from step" in rerun.stdout + rerun.stderr + forced.stdout + forced.stderr
        # same outputs as the uninterrupted run: nothing downstream is out of date, the metrics are equal
        assert _ran(_dvc(repo_copy, "repro", TARGET).stdout) == []
        assert _outputs(repo_copy) == reference, f"metrics differ after rerunning {stage}"
    assert not checkpoint.exists()  # a finished run removes its checkpoint
