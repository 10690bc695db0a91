"""Training and evaluation settings: one precedence rule for the layers, every value checked when it is read."""

import subprocess
import sys

import pytest

from dcseg.config import ConfigError
from dcseg.evaluation import evaluation_settings as eval_settings
from dcseg.models.blocks import input_size_problem
from dcseg.runs import Run, command_line_keys, load_run_params
from dcseg.training import layered_settings, train_settings

from .conftest import REPO


def _settings(run: Run, *overrides: str):
    """What `python stages/train.py <run> <overrides>` would train."""
    cfg = load_run_params(list(overrides))
    return train_settings(cfg, run.model, variant=run.variant,
                                command_line=command_line_keys(list(overrides), cfg.profile), **run.train_options())


def test_the_command_line_is_the_top_layer():
    # issue 12, item 5: `dcseg --ablation no_rec train.steps=10` trained the ablation schedule's 250 steps
    # (the ablation schedule is empty in both profiles now: the variants train like the main run)
    assert _settings(Run("dcseg", "no_rec")).steps == load_run_params([]).profiles.cpu.train.steps
    assert _settings(Run("dcseg", "no_rec"), "train.steps=10").steps == 10
    # ... and under profile=paper the per-model steps (DC-Seg 75k, mmFormer 150k) no longer win over it
    paper = load_run_params(["profile=paper"])
    assert _settings(Run("mmformer"), "profile=paper").steps == paper.profiles.paper.models.mmformer.steps
    assert _settings(Run("mmformer"), "profile=paper", "train.steps=10").steps == 10
    assert _settings(Run("dcseg"), "profile=paper", "train.steps=10", "models.dcseg.steps=20").steps == 20  # in order
    assert _settings(Run("rfnet"), "train.lr=0.01").lr == 0.01
    # the params file's own layers: the model entry wins over the protocol, the ablation schedule over both
    cfg = load_run_params(["profile=paper", "profiles.paper.train.steps=11", "profiles.paper.models.dcseg.steps=12"])
    assert train_settings(cfg, "dcseg").steps == 12
    assert train_settings(cfg, "rfnet").steps == 11
    from dcseg.config import load_params

    cfg = load_params(extra_keys={"profiles": {"cpu": {"ablation": {"steps": 7}}}})
    values, sources = layered_settings(cfg, "cpu", "dcseg", ablation=True)
    assert sources["steps"] == "profiles.cpu.ablation.steps" and sources["batch_size"] == "profiles.cpu.train.batch_size"
    assert values["steps"] == 7


def test_a_command_line_key_of_another_model_or_an_unlayered_key_changes_nothing_here():
    assert _settings(Run("rfnet"), "models.dcseg.crop=32").crop == _settings(Run("rfnet")).crop
    assert _settings(Run("rfnet"), "models.rfnet.eval_patch=16").crop == _settings(Run("rfnet")).crop


BAD = [  # (override, the full key the message names, what it must say is allowed)
    ("train.steps=abc", "profiles.cpu.train.steps", "integer"),
    ("train.steps=2.5", "profiles.cpu.train.steps", "integer"),
    ("train.steps=0", "profiles.cpu.train.steps", ">= 1"),
    ("train.steps=-5", "profiles.cpu.train.steps", ">= 1"),
    ("train.batch_size=0", "profiles.cpu.train.batch_size", ">= 1"),
    ("train.batch_size=-2", "profiles.cpu.train.batch_size", ">= 1"),
    ("train.lr=-1", "profiles.cpu.train.lr", "> 0"),
    ("train.lr=abc", "profiles.cpu.train.lr", "number"),
    ("train.weight_decay=-1", "profiles.cpu.train.weight_decay", ">= 0"),
    ("train.checkpoint_every=0", "profiles.cpu.train.checkpoint_every", ">= 1"),
    ("train.steps_per_epoch=0", "profiles.cpu.train.steps_per_epoch", ">= 1"),
    ("train.seed=abc", "profiles.cpu.train.seed", "integer"),
    ("train.foreground_fraction=1.5", "profiles.cpu.train.foreground_fraction", "[0, 1]"),
    ("train.precision=fp16", "profiles.cpu.train.precision", "fp32"),
    ("train.augment.flip=maybe", "profiles.cpu.train.augment.flip", "true or false"),
    ("train.augment.intensity_scale=5", "profiles.cpu.train.augment.intensity_scale", "[0, 1)"),
    ("models.rfnet.crop=0", "profiles.cpu.models.rfnet.crop", ">= 1"),
    ("models.rfnet.crop=25", "profiles.cpu.models.rfnet.crop", "divisible by 8"),
    ("models.rfnet.crop=8", "profiles.cpu.models.rfnet.crop", "one voxel at the deepest level"),
    ("models.rfnet.eval_patch=12", "profiles.cpu.models.rfnet.eval_patch", "divisible by 8"),
    ("models.rfnet.eval_patch=8", "profiles.cpu.models.rfnet.eval_patch", "one voxel at the deepest level"),
    ("models.rfnet.width=huge", "profiles.cpu.models.rfnet.width", "cpu"),
]


@pytest.mark.parametrize("override, key, allowed", BAD, ids=[b[0] for b in BAD])
def test_every_bad_training_value_names_its_key_its_value_and_what_is_allowed(override, key, allowed):
    with pytest.raises(ConfigError) as error:
        _settings(Run("rfnet"), override)
    message = str(error.value)
    assert key in message and allowed in message and override.split("=", 1)[1] in message, message
    assert "\n" not in message


def test_a_bad_value_from_the_ablation_schedule_or_the_loss_names_that_key():
    from dcseg.config import load_params

    cfg = load_params(extra_keys={"profiles": {"cpu": {"ablation": {"steps": 0}}}})
    with pytest.raises(ConfigError, match="profiles.cpu.ablation.steps"):
        train_settings(cfg, "dcseg", variant="no_rec", **Run("dcseg", "no_rec").train_options())
    with pytest.raises(ConfigError, match="loss.alpha"):
        _settings(Run("dcseg"), "loss.alpha=-1")


@pytest.mark.parametrize("override, key", [("evaluate.subset_batch=0", "subset_batch"),
                                           ("evaluate.overlap=1.5", "overlap"),
                                           ("models.rfnet.eval_patch=abc", "eval_patch"),
                                           ("evaluate.device=tpu", "profiles.cpu.evaluate.device"),
                                           ("evaluate.et_min_volume_mm3=-1", "et_min_volume_mm3")])
def test_bad_evaluation_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key):
        eval_settings(load_run_params([override]), "rfnet")


def test_the_train_stage_refuses_bad_steps_in_one_line_and_keeps_the_trained_model(tmp_path):
    # issue 12, items 2 and 6: `train.steps=-5` overwrote models/rfnet/model.pt with an untrained network
    model = tmp_path / "models" / "rfnet" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a trained model")
    for steps in ("-5", "0", "abc"):
        p = subprocess.run([sys.executable, str(REPO / "stages" / "train.py"), "rfnet", f"train.steps={steps}"],
                           cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert p.stderr.strip().splitlines() == [p.stderr.strip()]  # one line
        assert "profiles.cpu.train.steps" in p.stderr and steps in p.stderr
    assert model.read_bytes() == b"a trained model"


def test_unknown_keys_of_a_model_entry_and_reserved_names_are_refused():
    from dcseg.config import load_params
    entry = load_params(extra_keys={"profiles": {"cpu": {"models": {"rfnet": {"optimiser": "sgd"}}}}})
    with pytest.raises(ConfigError, match=r"profiles.cpu.models.rfnet has unknown key\(s\) \['optimiser'\]"):
        train_settings(entry, "rfnet")
    for reserved in ("model", "alpha"):  # a TrainSettings field that the run or the loss section owns
        cfg = load_params(extra_keys={"profiles": {"cpu": {"train": {reserved: 1}}}})
        with pytest.raises(ConfigError, match=f"profiles.cpu.train.{reserved}"):
            train_settings(cfg, "dcseg")


def test_a_crop_that_leaves_one_voxel_at_the_deepest_level_is_refused_before_training():
    # mmFormer downsamples by 16: at 16^3 its bottleneck is 1^3, which instance norm maps to zeros (it trained so
    # and failed at the first one-window validation); 32^3 (2^3) and a non-cubic 16 x 16 x 32 tile are fine
    with pytest.raises(ConfigError, match=r"profiles\.cpu\.models\.mmformer\.crop is 16; mmformer: .*one voxel"):
        _settings(Run("mmformer"), "models.mmformer.crop=16", "models.mmformer.eval_patch=16")
    assert _settings(Run("mmformer"), "models.mmformer.crop=32").crop == 32
    assert input_size_problem((16, 16, 32), 16) is None
    assert "divisible by 16" in input_size_problem((16, 16, 24), 16)
