"""Trainer and sampler: determinism, bitwise resume, schedule, refusing foreign checkpoints."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dcseg.checkpoint import CheckpointError, load_model
from dcseg.data.dataset import build_preprocessed
from dcseg.data.sampler import AugmentConfig, TrainingSampler
from dcseg.data.splits import write_split
from dcseg.tasks import BRATS
from dcseg.training import TrainSettings, poly_lr, train

from .conftest import make_arrays, write_case
from .ddp_settings import TINY



def tiny_settings(model, **kw):
    # mmFormer has 5 levels: a 32^3 crop leaves a 2^3 token grid (instance norm needs > 1 voxel)
    crop = 32 if model == "mmformer" else 16
    base = dict(model=model, width="cpu", overrides=TINY[model], steps=6, steps_per_epoch=2, batch_size=2, crop=crop,
                checkpoint_every=2, log_every=1, precision="fp32", channels_last=False, fuse_warmup_epochs=1,
                augment=AugmentConfig(rotate=True))
    base.update(kw)
    return TrainSettings(**base)


def test_poly_schedule_known_values():
    assert poly_lr(2e-4, 0, 300, 0.9) == 2e-4
    assert poly_lr(2e-4, 150, 300, 0.9) == round(2e-4 * 0.5 ** 0.9, 8)
    assert poly_lr(2e-4, 299, 300, 0.9) == round(2e-4 * (1 / 300) ** 0.9, 8)


def test_sampler_is_a_function_of_seed_and_step(tiny_data):
    ids = (tiny_data / "split" / "train.txt").read_text().split()
    s1 = TrainingSampler(tiny_data, ids, 16, AugmentConfig(rotate=True), seed=3)
    s2 = TrainingSampler(tiny_data, ids, 16, AugmentConfig(rotate=True), seed=3)
    a, b = s1.batch(7, 2), s2.batch(7, 2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(s1.batch(8, 2)[0], a[0])
    x, y, m = a
    assert x.shape == (2, 4, 16, 16, 16) and x.dtype == np.float32 and y.dtype == np.int64 and m.dtype == bool
    assert all(tuple(row) in BRATS.masks for row in m)
    # ranks split the global batch: rank 0 takes samples 0, 2, ..., rank 1 takes 1, 3, ...
    full = s1.batch(5, 4)
    r0, r1 = s1.batch(5, 4, rank=0, world_size=2), s1.batch(5, 4, rank=1, world_size=2)
    np.testing.assert_array_equal(full[0][0::2], r0[0])
    np.testing.assert_array_equal(full[0][1::2], r1[0])


def test_each_pass_visits_every_case_once(tiny_data):
    ids = (tiny_data / "split" / "train.txt").read_text().split()
    s = TrainingSampler(tiny_data, ids, 16, AugmentConfig(), seed=0)
    for p in range(3):
        assert sorted(s.case_for(p * 3 + i) for i in range(3)) == [0, 1, 2]


def test_foreground_oversampling_puts_tumour_in_every_forced_crop(tmp_path):
    # a 48^3 volume with a small tumour in one corner: uniform 16^3 crops mostly miss it
    ids = ["BraTS20_Training_001", "BraTS20_Training_002"]
    for c in ids:
        image, seg = make_arrays((48, 48, 48), seed=0)
        seg[:] = 0
        seg[40:43, 41:44, 40:42] = 2
        write_case(tmp_path / "raw", c, image, seg)
    write_split(tmp_path / "split", {"train": ids, "val": [], "test": []})
    build_preprocessed(tmp_path / "raw", tmp_path / "split", tmp_path / "pre", (16, 16, 16), progress=False)
    aug = AugmentConfig(flip=False)
    uniform = TrainingSampler(tmp_path / "pre", ids, 16, aug, seed=0)
    forced = TrainingSampler(tmp_path / "pre", ids, 16, aug, seed=0, foreground_fraction=1.0)
    hits_uniform = sum(bool((uniform.sample(step, 0, 1)[1] > 0).any()) for step in range(40))
    hits_forced = sum(bool((forced.sample(step, 0, 1)[1] > 0).any()) for step in range(40))
    assert hits_forced == 40 and hits_uniform < 20
    # fraction 0 draws exactly the references' uniform crops (the extra random draw happens only when enabled)
    zero = TrainingSampler(tmp_path / "pre", ids, 16, aug, seed=0, foreground_fraction=0.0)
    np.testing.assert_array_equal(zero.batch(3, 2)[0], uniform.batch(3, 2)[0])
    with pytest.raises(Exception, match="foreground_fraction"):
        TrainingSampler(tmp_path / "pre", ids, 16, aug, seed=0, foreground_fraction=1.5)


def test_augmentation_keeps_image_and_label_aligned(tmp_path):
    ids = ["BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_003"]
    for i, c in enumerate(ids):
        image, seg = make_arrays((20, 22, 18), seed=i)
        image[0] = np.where(seg > 0, 1000.0, image[0] * 0.1)  # FLAIR marks the tumour exactly
        write_case(tmp_path / "raw", c, image, seg, dtype=np.float32)
    write_split(tmp_path / "split", {"train": ids, "val": [], "test": []})
    build_preprocessed(tmp_path / "raw", tmp_path / "split", tmp_path / "pre", (16, 16, 16), progress=False)
    s = TrainingSampler(tmp_path / "pre", ids, 16, AugmentConfig(rotate=True, intensity_scale=0, intensity_shift=0),
                        seed=1)
    for step in range(12):
        x, y, _ = s.batch(step, 2)
        tumour = y > 0
        assert tumour.any() or step  # at least some crops hit the tumour
        bright = x[:, 0] > x[:, 0][~tumour].max() if (~tumour).any() else tumour
        np.testing.assert_array_equal(bright, tumour)


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.parametrize("model", ["rfnet", "mmformer", "dcseg"])
def test_resume_after_interruption_gives_bitwise_identical_weights(tiny_data, tmp_path, model):
    settings = tiny_settings(model)
    ref = train(settings, tiny_data, tmp_path / "ref", tmp_path / "ref_ckpt.pt", progress=False)
    assert ref["resumed_from_step"] == 0 and not (tmp_path / "ref_ckpt.pt").exists()

    # "killed" after step 5: the last checkpoint is from step 4
    stopped = train(settings, tiny_data, tmp_path / "run", tmp_path / "ckpt.pt", progress=False, stop_at_step=5)
    assert stopped == {"stopped_at": 5} and (tmp_path / "ckpt.pt").is_file()
    assert not (tmp_path / "run" / "model.pt").exists()
    resumed = train(settings, tiny_data, tmp_path / "run", tmp_path / "ckpt.pt", progress=False)
    assert resumed["resumed_from_step"] == 4

    a, b = _weights(tmp_path / "ref" / "model.pt"), _weights(tmp_path / "run" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the logged curves are complete after the resume
    total = (tmp_path / "run" / "live" / "plots" / "metrics" / "train" / "loss" / "total.tsv").read_text().split("\n")
    assert [line.split("\t")[0] for line in total[1:] if line] == ["1", "2", "3", "4", "5", "6"]


def test_checkpoint_from_another_config_is_not_resumed(tiny_data, tmp_path, capsys):
    train(tiny_settings("rfnet"), tiny_data, tmp_path / "a", tmp_path / "ckpt.pt", progress=False, stop_at_step=3)
    other = tiny_settings("rfnet", lr=1e-3)
    summary = train(other, tiny_data, tmp_path / "a", tmp_path / "ckpt.pt", progress=False)
    assert summary["resumed_from_step"] == 0
    assert "written for another model, config or dataset" in capsys.readouterr().out


def test_model_file_round_trip_and_refusal(tiny_data, tmp_path):
    train(tiny_settings("rfnet", steps=2), tiny_data, tmp_path / "m", tmp_path / "c.pt", progress=False)
    model, meta = load_model(tmp_path / "m" / "model.pt", expected={"model": "rfnet"})
    assert meta["model"] == "rfnet" and meta["steps"] == 2 and not model.training
    x = torch.randn(1, 4, 16, 16, 16)
    assert model(x, torch.ones(1, 4, dtype=torch.bool)).shape == (1, 4, 16, 16, 16)
    with pytest.raises(CheckpointError, match=r"model\.pt does not match this run \(model: file has 'rfnet', "
                                              r"expected 'dcseg'"):
        load_model(tmp_path / "m" / "model.pt", expected={"model": "dcseg"})
    (tmp_path / "m" / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(tmp_path / "m" / "bad.pt")


def test_settings_are_recorded(tiny_data, tmp_path):
    s = tiny_settings("rfnet", steps=2)
    summary = train(s, tiny_data, tmp_path / "m", tmp_path / "c.pt", progress=False)
    assert summary["settings"]["crop"] == 16 and summary["settings"]["augment"]["rotate"] is True
    assert dataclasses.asdict(s.augment) == summary["settings"]["augment"]


# --------------------------------------------------------------------------------------------------------------------
# Issue 12: the run folder is replaced whole, resumed logs equal uninterrupted ones, settings are layered and checked


def _folder_bytes(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resumed_run_logs_the_uninterrupted_runs_epoch_losses(tiny_data, tmp_path):
    # a checkpoint in the middle of an epoch (step 4 of epochs of 3): the epoch's mean must cover its steps before
    # the interruption too (it averaged only the steps after the resume: 8.0486 vs 8.5356)
    settings = tiny_settings("rfnet", steps=6, steps_per_epoch=3, checkpoint_every=2)
    train(settings, tiny_data, tmp_path / "ref", tmp_path / "ref.pt", progress=False)
    train(settings, tiny_data, tmp_path / "run", tmp_path / "run.pt", progress=False, stop_at_step=5)
    resumed = train(settings, tiny_data, tmp_path / "run", tmp_path / "run.pt", progress=False)
    assert resumed["resumed_from_step"] == 4
    logs = tmp_path / "{}" / "live" / "plots" / "metrics"
    for name in ("epoch/loss.tsv", "train/loss/total.tsv", "epoch/index.tsv"):
        assert (Path(str(logs).format("run")) / name).read_text() == (Path(str(logs).format("ref")) / name).read_text()
    assert resumed["final_epoch_loss"] == json.loads((tmp_path / "ref" / "train_summary.json").read_text())[
        "final_epoch_loss"]


def test_a_failed_or_killed_run_leaves_the_previous_run_folders_whole(tiny_data, tmp_path, monkeypatch):
    out, logs, ckpt = tmp_path / "models" / "rfnet", tmp_path / "logs" / "rfnet", tmp_path / "ckpt.pt"
    train(tiny_settings("rfnet", steps=2), tiny_data, out, ckpt, progress=False, log_dir=logs)
    assert (out / "model.pt").is_file() and (logs / "train_summary.json").is_file() and (logs / "live").is_dir()
    before = (_folder_bytes(out), _folder_bytes(logs))

    # killed mid-run (simulated: the run stops without finishing) and failed mid-run (an exception at step 3)
    train(tiny_settings("rfnet", steps=6), tiny_data, out, ckpt, progress=False, log_dir=logs, stop_at_step=3)
    assert (_folder_bytes(out), _folder_bytes(logs)) == before
    import dcseg.training as training
    real = training.total_loss
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise FloatingPointError("injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "total_loss", failing)
    with pytest.raises(FloatingPointError, match="injected"):
        train(tiny_settings("rfnet", steps=6, seed=5), tiny_data, out, ckpt, progress=False, log_dir=logs)
    assert (_folder_bytes(out), _folder_bytes(logs)) == before
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["rfnet"]  # no staging folder left
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["rfnet"]

    monkeypatch.setattr(training, "total_loss", real)  # a finished run replaces both folders
    summary = train(tiny_settings("rfnet", steps=3), tiny_data, out, ckpt, progress=False, log_dir=logs)
    assert summary["steps"] == 3 and json.loads((logs / "train_summary.json").read_text())["steps"] == 3
    assert torch.load(out / "model.pt", weights_only=True)["steps"] == 3
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["rfnet"]


def test_a_crop_larger_than_the_smallest_volume_is_refused_before_training(tiny_data, tmp_path):
    from dcseg.config import ConfigError
    with pytest.raises(ConfigError, match=r"crop 40 is larger than the smallest preprocessed training volume"):
        train(tiny_settings("rfnet", crop=40), tiny_data, tmp_path / "m", tmp_path / "c.pt", progress=False)
    assert not (tmp_path / "m").exists()


def test_model_and_log_folders_must_not_nest(tiny_data, tmp_path):
    from dcseg.config import ConfigError
    for out, logs in ((tmp_path / "x" / "model", tmp_path / "x"), (tmp_path / "y", tmp_path / "y" / "live")):
        with pytest.raises(ConfigError, match="lies inside"):
            train(tiny_settings("rfnet", steps=1), tiny_data, out, tmp_path / "c.pt", progress=False, log_dir=logs)


def test_staging_removes_what_a_killed_run_left_and_replace_puts_the_old_folder_back_on_failure(tmp_path, monkeypatch):
    from dcseg import io
    target = tmp_path / "logs" / "rfnet"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    for left in (".rfnet.tmp", ".rfnet.tmp.old99"):  # a kill mid-run, a kill between the two renames
        (tmp_path / "logs" / left).mkdir()
    staged = io.staging_dir(target)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [".rfnet.tmp", "rfnet"] and not any(staged.iterdir())
    real = io.os.replace

    def failing(src, dst):
        if src == staged:
            raise OSError("injected")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", failing)
    with pytest.raises(OSError, match="injected"):
        io.replace_dir(staged, target)
    assert (target / "old.txt").read_text() == "old"  # put back


def test_each_rank_resumes_with_its_own_partial_epoch(tiny_data, tmp_path):
    from dcseg.checkpoint import checkpoint_record, restore_checkpoint
    from dcseg.registry import build_model
    model = build_model("rfnet", width="cpu", **TINY["rfnet"])
    optimiser = torch.optim.Adam(model.parameters())
    record = checkpoint_record("f", {}, 4, model, optimiser, [], [[1.0, 2.0], [3.0, 4.0]], torch.device("cpu"))
    assert restore_checkpoint(record, model, optimiser, torch.device("cpu"), rank=1)[2] == [3.0, 4.0]
    assert restore_checkpoint(record, model, optimiser, torch.device("cpu"), rank=0)[2] == [1.0, 2.0]


# --------------------------------------------------------------------------------------------------------------------
# Issue 15: validation scoring during training leaves the trajectory bitwise unchanged


@pytest.mark.parametrize("model", ["mmformer", "dcseg"])  # mmFormer: dropout draws from the torch generator
def test_validation_scoring_leaves_the_training_trajectory_bitwise_unchanged(tiny_data, tmp_path, model):
    from dcseg.convergence import ValidationConfig

    plain = tiny_settings(model)
    scored = tiny_settings(model, validation=ValidationConfig(every=2, subsets=("flair", "flair+t1ce+t1+t2")))
    ref = train(plain, tiny_data, tmp_path / "ref", tmp_path / "ref.pt", progress=False)
    assert ref["validation"]["curve"] == [] and ref["validation"]["trend"] == "undetermined"
    # scored, and killed after step 5 (checkpoint at step 4), then resumed
    train(scored, tiny_data, tmp_path / "run", tmp_path / "ckpt.pt", progress=False, stop_at_step=5)
    summary = train(scored, tiny_data, tmp_path / "run", tmp_path / "ckpt.pt", progress=False)
    assert summary["resumed_from_step"] == 4
    a, b = _weights(tmp_path / "ref" / "model.pt"), _weights(tmp_path / "run" / "model.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    validation = summary["validation"]
    assert [row["step"] for row in validation["curve"]] == [2, 4, 6]  # complete after the resume
    assert validation["cases"] == 1 and validation["subsets"] == ["flair", "flair+t1ce+t1+t2"]
    for row in validation["curve"]:
        assert set(row) == {"step", "WT", "TC", "ET", "mean"}
        assert 0 <= row["mean"] <= 1 and row["mean"] == pytest.approx((row["WT"] + row["TC"] + row["ET"]) / 3,
                                                                      abs=2e-6)
    assert validation["last"] == validation["curve"][-1]
    assert validation["best"]["mean"] == max(row["mean"] for row in validation["curve"])
    logged = (tmp_path / "run" / "live" / "plots" / "metrics" / "val" / "dice" / "mean.tsv").read_text().split("\n")
    assert [line.split("\t")[0] for line in logged[1:] if line] == ["2", "4", "6"]


def test_validation_dice_is_the_evaluations_dice_on_the_validation_cases(tiny_data, tmp_path):
    """The logged score equals an independent computation: the evaluation's inference and Dice on the val split."""
    from dcseg.convergence import ValidationConfig, score_validation
    from dcseg.data.preprocess import load_case
    from dcseg.inference import InferenceSettings, predict_labels
    from dcseg.metrics import dice
    from dcseg.tasks import BRATS
    from dcseg.subsets import subset_by_name

    settings = tiny_settings("rfnet", steps=2, validation=ValidationConfig(every=2, subsets=("t2",)))
    summary = train(settings, tiny_data, tmp_path / "m", tmp_path / "c.pt", progress=False)
    model, _ = load_model(tmp_path / "m" / "model.pt")
    inference = InferenceSettings(patch=16, overlap=0.5)
    case = (tiny_data / "split" / "val.txt").read_text().split()[0]
    image, label = load_case(tiny_data, case)
    prediction = predict_labels(model, np.array(image), inference, [subset_by_name("t2").mask])[0].numpy()
    truth, predicted = BRATS.region_masks(np.asarray(label)), BRATS.region_masks(prediction)
    expected = {r: dice(predicted[r], truth[r]) for r in ("WT", "TC", "ET")}
    assert summary["validation"]["last"]["WT"] == pytest.approx(expected["WT"], abs=1e-6)
    assert summary["validation"]["last"]["ET"] == pytest.approx(expected["ET"], abs=1e-6)
    assert score_validation(model, tiny_data, [case], ("t2",), inference, "cpu")["TC"] == pytest.approx(
        expected["TC"], abs=1e-9)


@pytest.mark.parametrize("steps, values, expected", [
    # 1400 steps, scored every 140: the tail is steps >= 980 (4 points)
    (range(140, 1401, 140), [0.2, 0.4, 0.5, 0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78], "still rising"),  # +0.02/140
    (range(140, 1401, 140), [0.2, 0.4, 0.5, 0.6, 0.65, 0.7, 0.80, 0.80, 0.801, 0.80], "plateaued"),
    (range(140, 1401, 140), [0.2, 0.4, 0.5, 0.6, 0.65, 0.7, 0.80, 0.78, 0.76, 0.74], "plateaued"),     # falling
    # the fitted gain over the 420-step tail is what counts: 0.009 is below RISE, 0.0125 above
    ([980, 1120, 1260, 1400], [0.8, 0.803, 0.806, 0.809], "plateaued"),
    ([980, 1120, 1260, 1400], [0.8, 0.80416, 0.80833, 0.8125], "still rising"),
    ([700, 1400], [0.5, 0.9], "undetermined"),                   # one point in the tail
    ([], [], "undetermined"),
])
def test_convergence_rule(steps, values, expected):
    from dcseg.convergence import trend

    assert trend(list(steps), values, 1400) == expected


def test_validation_is_due_every_k_steps_and_after_the_last():
    from dcseg.convergence import due

    assert [s for s in range(1, 11) if due(s, 10, 4)] == [4, 8, 10]
    assert not any(due(s, 10, 0) for s in range(1, 11))


def test_bad_validation_settings_fail_with_their_key():
    from dcseg.config import ConfigError, load_params
    from dcseg.training import train_settings

    for key, value, message in (("subsets", "[flair, t9]", "subset names"), ("every", "-1", "every"),
                                ("overlap", "1.0", "overlap"), ("evry", "3", "unknown key")):
        cfg = load_params(extra_keys={"profiles": {"cpu": {"train": {"validation": {key: None}}}}}) \
            if key == "evry" else load_params([f"profiles.cpu.train.validation.{key}={value}"])
        with pytest.raises(ConfigError, match=message):
            train_settings(cfg, "rfnet")
