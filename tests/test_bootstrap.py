"""scripts/torch_choice.py and its use in scripts/bootstrap.sh: which index torch is installed from.

No network: the decision is fed recorded pip reports (tests/data/pip_reports/), and the few real pip calls
run with PIP_NO_INDEX=1 on requirements that need no download.
"""

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REPORTS = Path(__file__).resolve().parent / "data" / "pip_reports"
CPU_ARGS = ["--index-url", "https://download.pytorch.org/whl/cpu"]

# scripts/ is not a package (the module must run before the project is installed): load it by path.
_spec = importlib.util.spec_from_file_location("torch_choice", REPO / "scripts" / "torch_choice.py")
torch_choice = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(torch_choice)


def report(name: str) -> dict:
    return json.loads((REPORTS / f"{name}.json").read_text())


@pytest.mark.parametrize("fixture, gpu, expected", [
    ("local_cpu_wheel", False, []),   # this machine: a local +cpu wheel, nothing to fix
    ("local_cpu_wheel", True, []),
    ("pypi_cuda_build", False, CPU_ARGS),  # PyPI's Linux build on a CPU machine: steer to the CPU index
    ("pypi_cuda_build", True, []),    # a GPU is there: the CUDA build is what the user wants
    ("cpu_index_build", False, []),   # already resolved from the CPU index
])
def test_choose_adds_the_cpu_index_only_for_a_cuda_build_without_a_gpu(fixture, gpu, expected):
    args, why = torch_choice.choose(report(fixture), gpu_present=gpu)
    assert args == expected
    assert "\n" not in why and why


def test_the_reasons_name_the_build_and_the_override():
    _, cpu = torch_choice.choose(report("local_cpu_wheel"), gpu_present=False)
    assert "2.13.0+cpu" in cpu and "no CUDA packages" in cpu
    _, steer = torch_choice.choose(report("pypi_cuda_build"), gpu_present=False)
    assert "nvidia-cuda-nvrtc-cu12" in steer and "16 in all" in steer and "TORCH_SPEC" in steer
    _, keep = torch_choice.choose(report("pypi_cuda_build"), gpu_present=True)
    assert "GPU is present" in keep


def test_a_cu_local_tag_alone_marks_a_cuda_build():
    # e.g. pip.conf points at a cu126 index and the nvidia wheels are already installed
    cu = copy.deepcopy(report("local_cpu_wheel"))
    cu["install"][0]["metadata"]["version"] = "2.13.0+cu126"
    assert torch_choice.choose(cu, gpu_present=False)[0] == CPU_ARGS
    assert torch_choice.choose(cu, gpu_present=True)[0] == []


@pytest.mark.parametrize("name, version, cuda", [
    ("nvidia_cublas_cu12", "12.8.4.1", True), ("Nvidia-CUDNN-cu12", "9.10.2.21", True), ("triton", "3.6.0", True),
    ("torch", "2.13.0+cu118", True), ("torch", "2.13.0+cpu", False), ("torch", "2.13.0", False),
    ("sympy", "1.14.0", False), ("tritonclient", "2.0", False),
])
def test_is_cuda(name, version, cuda):
    assert torch_choice.is_cuda(name, version) is cuda


def test_an_already_satisfied_pin_adds_nothing():
    args, why = torch_choice.choose({"version": "1", "install": []}, gpu_present=False)
    assert args == [] and "already satisfied" in why


def test_a_report_without_an_install_list_is_refused():
    with pytest.raises(ValueError, match="no 'install' list"):
        torch_choice.choose({"version": "1"}, gpu_present=False)


# ---- the CLI, with pip replaced by an injected runner ----

def fake_pip(fixture=None, stderr="", returncode=0):
    """A stand-in for subprocess.run that writes `fixture` where pip's --report would go."""
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        if fixture is not None:
            Path(cmd[cmd.index("--report") + 1]).write_text((REPORTS / f"{fixture}.json").read_text())
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)
    run.calls = calls
    return run


def test_main_asks_pips_dry_run_for_the_pin_and_prints_the_cpu_index(capsys):
    run = fake_pip("pypi_cuda_build")
    assert torch_choice.main(["torch==2.13.0"], run=run, platform="linux", gpu=lambda: False) == 0
    out, err = capsys.readouterr()
    assert out.split() == CPU_ARGS
    assert err.count("\n") == 1 and err.startswith("bootstrap: ")
    (cmd,) = run.calls
    assert cmd[:6] == [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet"]
    assert cmd[-1] == "torch==2.13.0"


@pytest.mark.parametrize("fixture, gpu", [("local_cpu_wheel", False), ("pypi_cuda_build", True),
                                          ("cpu_index_build", False)])
def test_main_prints_no_arguments_when_pip_is_left_alone(capsys, fixture, gpu):
    assert torch_choice.main(["torch==2.13.0"], run=fake_pip(fixture), platform="linux", gpu=lambda: gpu) == 0
    assert capsys.readouterr().out == "\n"


def test_a_failed_dry_run_adds_no_index_and_says_so_in_one_line(capsys):
    run = fake_pip(stderr="WARNING: Retrying ...\nERROR: No matching distribution found for torch==2.13.0\n",
                   returncode=1)
    gpu_asked = []
    assert torch_choice.main(["torch==2.13.0"], run=run, platform="linux",
                             gpu=lambda: gpu_asked.append(1) or False) == 0
    out, err = capsys.readouterr()
    assert out == "\n"
    assert err == ("bootstrap: pip's dry run of torch==2.13.0 failed (ERROR: No matching distribution found "
                   "for torch==2.13.0); installing with pip's own index settings\n")
    assert not gpu_asked


def test_an_unreadable_report_counts_as_a_failed_dry_run(capsys, tmp_path):
    def run(cmd, **kwargs):
        Path(cmd[cmd.index("--report") + 1]).write_text('{"version": "1"}')
        return subprocess.CompletedProcess(cmd, 0, "", "")
    assert torch_choice.main(["torch==2.13.0"], run=run, platform="linux", gpu=lambda: False) == 0
    out, err = capsys.readouterr()
    assert out == "\n" and "dry run of torch==2.13.0 failed (unreadable report" in err


def test_real_pip_failure_is_reported_without_network(capsys, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert torch_choice.main(["no-such-project-dcseg==0"], platform="linux", gpu=lambda: False) == 0
    out, err = capsys.readouterr()
    assert out == "\n" and "No matching distribution found for no-such-project-dcseg==0" in err


def test_real_pip_report_of_a_satisfied_requirement_reads(monkeypatch):
    # pip is installed, so pip resolves it without an index: checks the command line and report format
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    got, failure = torch_choice.dry_run(["pip"])
    assert failure == "" and got["version"] == "1" and got["install"] == []


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_no_dry_run_off_linux(capsys, platform):
    run = fake_pip("pypi_cuda_build")
    assert torch_choice.main(["torch==2.13.0"], run=run, platform=platform, gpu=lambda: False) == 0
    assert capsys.readouterr().out == "\n" and run.calls == []


def test_usage_error_is_one_line(capsys):
    assert torch_choice.main([], run=fake_pip(), platform="linux") == 2
    assert capsys.readouterr().err.count("\n") == 1


# ---- GPU detection ----

def test_detect_gpu_from_the_driver_files(tmp_path):
    dev, proc = tmp_path / "nvidia0", tmp_path / "gpus"
    none = dict(smi=str(tmp_path / "no-nvidia-smi"))
    assert not torch_choice.detect_gpu(dev, proc, **none)
    dev.touch()
    assert torch_choice.detect_gpu(dev, proc, **none)
    dev.unlink()
    proc.mkdir()
    assert not torch_choice.detect_gpu(dev, proc, **none)
    (proc / "0000:01:00.0").mkdir()
    assert torch_choice.detect_gpu(dev, proc, **none)


@pytest.mark.parametrize("result, present", [
    (subprocess.CompletedProcess([], 0, "GPU 0: NVIDIA H200 (UUID: GPU-1)\n", ""), True),
    (subprocess.CompletedProcess([], 9, "", "NVIDIA-SMI has failed\n"), False),
    (subprocess.TimeoutExpired("nvidia-smi", 20), False),
])
def test_detect_gpu_from_nvidia_smi(tmp_path, result, present):
    def run(cmd, **kwargs):
        assert cmd[1:] == ["-L"] and kwargs["timeout"] > 0
        if isinstance(result, Exception):
            raise result
        return result
    # any executable path will do for shutil.which; the fake run answers for nvidia-smi
    assert torch_choice.detect_gpu(tmp_path / "nvidia0", tmp_path / "gpus", smi=sys.executable, run=run) is present


# ---- bootstrap.sh, with .venv/bin/python replaced by a logging stand-in ----

FAKE_PYTHON = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Stand-in for .venv/bin/python: logs every call, answers pip dry runs from $FAKE_REPORT (fails without
    # one), does nothing for other pip calls, and runs scripts with the real interpreter under this name, so
    # that their sys.executable -m pip comes back here.
    echo "$*" >> "$FAKE_LOG"
    if [ "$1" = -m ] && [ "$2" = pip ]; then
        case " $* " in *" --index-url "*)
            [ -z "$FAKE_NO_INDEX" ] || { echo "ERROR: index unreachable" >&2; exit 1; };;
        esac
        case " $* " in *" --dry-run "*)
            [ -n "$FAKE_REPORT" ] || { echo "ERROR: index unreachable" >&2; exit 1; }
            while [ "$1" != --report ]; do shift; done
            cp "$FAKE_REPORT" "$2";;
        esac
        exit 0
    fi
    [ "$1" = -c ] && { echo "torch (fake)"; exit 0; }
    exec -a "$0" {real} "$@"
    """)


@pytest.fixture
def bootstrap(tmp_path):
    """Run a copy of scripts/bootstrap.sh against the fake interpreter; returns (pip calls, stderr)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "scripts/bootstrap.sh", "scripts/torch_choice.py"):
        shutil.copy(REPO / name, repo / name)
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON.replace("{real}", sys.executable))
    python.chmod(0o755)
    log = tmp_path / "log"

    def run(torch_spec=None, fixture=None, cpu_index_reachable=True):
        env = {k: v for k, v in os.environ.items() if k != "TORCH_SPEC"}
        env.update(FAKE_LOG=str(log), FAKE_REPORT=str(REPORTS / f"{fixture}.json") if fixture else "",
                   FAKE_NO_INDEX="" if cpu_index_reachable else "1")
        if torch_spec is not None:
            env["TORCH_SPEC"] = torch_spec
        (repo / ".venv" / ".bootstrap-stamp").unlink(missing_ok=True)
        log.write_text("")
        done = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        pip = [line for line in log.read_text().splitlines() if line.startswith("-m pip install")]
        return pip, done.stderr
    return run


def test_bootstrap_passes_torch_spec_through_untouched(bootstrap):
    spec = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
    pip, _ = bootstrap(torch_spec=spec)
    assert pip == ["-m pip install --quiet --upgrade pip", f"-m pip install --quiet {spec}",
                   "-m pip install --quiet -e .[dev]"]


def test_bootstrap_installs_the_pin_with_the_choice(bootstrap):
    pip, err = bootstrap(fixture="pypi_cuda_build")
    steer = not torch_choice.detect_gpu()  # on a GPU machine the CUDA build is kept
    assert pip[2] == "-m pip install --quiet torch==2.13.0" + (" " + " ".join(CPU_ARGS) if steer else "")
    assert "--dry-run" in pip[1] and pip[1].endswith(" torch==2.13.0")
    assert "bootstrap: pip resolves the CUDA build torch 2.13.0" in err


def test_bootstrap_keeps_pips_behaviour_when_the_dry_run_fails(bootstrap):
    pip, err = bootstrap(fixture=None)
    assert pip[2] == "-m pip install --quiet torch==2.13.0"
    assert "pip's dry run of torch==2.13.0 failed (ERROR: index unreachable)" in err


def test_bootstrap_falls_back_to_pips_own_index_when_the_cpu_index_is_unreachable(bootstrap):
    if torch_choice.detect_gpu():
        pytest.skip("a GPU machine keeps the CUDA build: the CPU index is never added")
    pip, err = bootstrap(fixture="pypi_cuda_build", cpu_index_reachable=False)
    assert pip[2] == "-m pip install --quiet torch==2.13.0 " + " ".join(CPU_ARGS)  # tried, failed
    assert pip[3] == "-m pip install --quiet torch==2.13.0"  # then the plain pin
    assert "retrying with pip's own index" in err
