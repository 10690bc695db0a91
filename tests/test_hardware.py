"""`auto` device, precision and memory format: resolved from the hardware, recorded, part of a checkpoint's identity."""

import json
import os

import pytest
import torch

from dcseg import hardware
from dcseg.config import load_params
from dcseg.evaluation import evaluation_settings as eval_settings
from dcseg.training import train_settings
from dcseg.training import train

from .test_training import tiny_settings

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16."""
    def set_native(value: bool):
        monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: value)
    return set_native


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_fp32_on_every_cpu(native_bf16, capsys, native):
    native_bf16(native)  # native bf16 measured no faster at the CPU profile's sizes: one precision for every CPU
    assert hardware.resolve_precision("auto", CPU) == "fp32"
    assert capsys.readouterr().err == ""  # auto never warns


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cuda_is_bf16_where_native(monkeypatch, native, expected):
    monkeypatch.setattr(hardware, "bf16_native", lambda device: native)
    assert hardware.resolve_precision("auto", torch.device("cuda", 0)) == expected


def test_explicit_bf16_without_native_support_works_and_warns_once(native_bf16, capsys):
    native_bf16(False)
    assert hardware.resolve_precision("bf16", CPU) == "bf16"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no native bf16" in err[0] and hardware.EMULATED_BF16_SLOWDOWN in err[0]
    native_bf16(True)
    assert hardware.resolve_precision("bf16", CPU) == "bf16" and capsys.readouterr().err == ""
    assert hardware.resolve_precision("fp32", CPU) == "fp32" and capsys.readouterr().err == ""


def test_cpu_bf16_native_follows_the_rule(monkeypatch):
    flags = {"mkldnn": True, "avx512_bf16": False, "amx": False}
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: flags["mkldnn"], raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: flags["avx512_bf16"])
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: flags["amx"])
    assert not hardware.cpu_bf16_native()  # oneDNN bf16 emulated on AVX-512F alone is not native
    flags["avx512_bf16"] = True
    assert hardware.cpu_bf16_native()
    flags.update(avx512_bf16=False, amx=True)
    assert hardware.cpu_bf16_native()
    flags["mkldnn"] = False
    assert not hardware.cpu_bf16_native()


def test_channels_last_and_device_resolution():
    assert hardware.resolve_channels_last("auto", CPU, "fp32") is True
    assert hardware.resolve_channels_last("auto", CPU, "bf16") is False
    assert hardware.resolve_channels_last("auto", torch.device("cuda", 0), "fp32") is False
    assert hardware.resolve_channels_last(False, CPU, "fp32") is False
    with pytest.raises(ValueError, match="channels_last"):
        hardware.resolve_channels_last("yes", CPU, "fp32")
    with pytest.raises(ValueError, match="precision"):
        hardware.resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="device"):
        hardware.resolve_device("tpu")
    if not torch.cuda.is_available():
        assert hardware.resolve_device("auto") == CPU
        with pytest.raises(ValueError, match="no CUDA device"):
            hardware.resolve_device("cuda")


def test_resolved_record_names_what_ran(native_bf16):
    native_bf16(False)
    device, record = hardware.resolve("cpu", "auto", "auto")
    assert device == CPU
    assert record.record() == {"device": "cpu", "precision": "fp32", "channels_last": True,
                               "cpu_capability": hardware.cpu_capability(), "cpu_kind": hardware.cpu_kind(),
                               "bf16_native": False, "threads": torch.get_num_threads(), "gpu": None}
    assert "fp32" in record.describe() and hardware.cpu_kind() in record.describe()


def test_params_say_auto_in_the_cpu_profile_and_fp32_in_the_paper_profile():
    cfg = load_params()
    for section in ("train", "evaluate"):
        for key in ("device", "precision", "channels_last"):
            assert cfg.profiles.cpu[section][key] == "auto", (section, key)
        assert cfg.profiles.paper[section].precision == "fp32"
    assert train_settings(cfg, "rfnet").precision == "auto"  # resolved at run time, not in the params
    with pytest.raises(Exception, match="profiles.cpu.train.precision"):
        train_settings(load_params(["profiles.cpu.train.precision=fp16"]), "rfnet")
    settings, _, device, record = eval_settings(load_params(["profiles.cpu.evaluate.precision=fp32"]), "rfnet")
    assert settings.precision == "fp32" == record.precision and settings.channels_last == record.channels_last


def test_threads_follow_idle_cpus_unless_omp_num_threads_is_set(monkeypatch):
    before, measure = torch.get_num_threads(), hardware.idle_cpus
    idle = measure(0.05)
    assert idle is None or 0 <= idle <= os.cpu_count()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(hardware, "idle_cpus", lambda interval=0.5: 0.3)  # other processes hold the cores
        assert "threads: 1 " in hardware.set_threads() and torch.get_num_threads() == 1
        monkeypatch.setattr(hardware, "idle_cpus", lambda interval=0.5: 1.0)  # one busy process on 2 CPUs
        hardware.set_threads()
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(hardware, "idle_cpus", lambda interval=0.5: 1.4)  # a short spike: still 2 free CPUs
        hardware.set_threads()
        assert torch.get_num_threads() == min(len(os.sched_getaffinity(0)), 2)
        monkeypatch.setattr(hardware, "idle_cpus", lambda interval=0.5: 64.0)  # capped at this process's CPUs
        hardware.set_threads()
        assert torch.get_num_threads() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert "OMP_NUM_THREADS" in hardware.set_threads()
    finally:
        torch.set_num_threads(before)


def test_summary_records_the_resolved_hardware_and_another_precision_is_not_resumed(tiny_data, tmp_path, monkeypatch,
                                                                                    capsys):
    settings = tiny_settings("rfnet", precision="auto", channels_last="auto", steps=4)
    ckpt = tmp_path / "ckpt.pt"
    train(settings, tiny_data, tmp_path / "a", ckpt, progress=False, stop_at_step=2)  # leaves a step-2 checkpoint
    assert ckpt.is_file()
    resolve_precision = hardware.resolve_precision
    # the same params where `auto` resolves to bf16 (a CUDA GPU with bf16): the fp32 checkpoint does not continue it
    monkeypatch.setattr(hardware, "resolve_precision", lambda spec, device, warn=True: "bf16")
    result = train(settings, tiny_data, tmp_path / "b", ckpt, progress=False, stop_at_step=0)
    out = capsys.readouterr().out
    assert result == {"stopped_at": 0}  # started afresh from step 0, not resumed at step 2
    assert "not resuming" in out and "precision fp32 (this run: bf16)" in out and "starting afresh" in out
    monkeypatch.setattr(hardware, "resolve_precision", resolve_precision)
    summary = train(settings, tiny_data, tmp_path / "c", ckpt, progress=False)
    assert "resuming rfnet from step 2" in capsys.readouterr().out
    written = json.loads((tmp_path / "c" / "train_summary.json").read_text())
    # (the file is JSON: tuples in the returned summary, e.g. the validation subsets, are lists there)
    assert written == json.loads(json.dumps(summary)) and written["settings"]["precision"] == "auto"
    assert written["hardware"]["precision"] == "fp32" and written["hardware"]["channels_last"] is True
    assert written["hardware"]["cpu_capability"] == hardware.cpu_capability()
