"""The paper profile trains and tests each method as its authors' scripts do (docs/reference.md §Optimisation)."""

import math

import pytest

from dcseg.config import ConfigError, load_params
from dcseg.data.splits import read_split
from dcseg.evaluation import evaluation_settings
from dcseg.runs import load_run_params
from dcseg.training import train_settings

from .conftest import REPO

# model: (batch, iterations per epoch, steps, crop, seed, fuse warm-up epochs, evaluation window), from the scripts
REFERENCES = {
    "rfnet": (2, 150, 45_000, 80, 1024, 20, 80),       # job.sh: 300 epochs x 150
    "mmformer": (8, None, 28_000, 128, 1024, 0, 128),  # job.sh: 1000 epochs x len(loader)
    "dcseg": (2, None, 55_000, 112, 999, 20, 80),      # job_brats.sh: 500 epochs x len(loader); predict: 80^3
}
EPOCHS = {"rfnet": 300, "mmformer": 1000, "dcseg": 500}


def _paper(*overrides):
    return load_run_params(["profile=paper", *overrides])


@pytest.mark.parametrize("model", sorted(REFERENCES))
def test_each_model_trains_and_tests_as_its_reference(model):
    batch, per_epoch, steps, crop, seed, warmup, window = REFERENCES[model]
    settings = train_settings(_paper(), model)
    train_cases = len(read_split(REPO / "splits" / "brats2020")["train"])
    # the references' len(loader): ceil(training cases / batch), written as a number in params.yaml
    assert settings.steps_per_epoch == (per_epoch or math.ceil(train_cases / batch))
    assert (settings.batch_size, settings.steps, settings.crop, settings.seed) == (batch, steps, crop, seed)
    assert settings.steps == EPOCHS[model] * settings.steps_per_epoch
    assert settings.fuse_warmup_epochs == warmup and settings.precision == "fp32" and settings.lr == 2e-4
    assert settings.augment.rotate and settings.augment.intensity_per_slice  # Q6: the shared transforms
    inference = evaluation_settings(_paper(), model, warn=False)[0]
    assert inference.patch == window and inference.overlap == 0.5  # stride = window / 2
    assert settings.network == ({"implementation": "official"} if model == "dcseg" else {})


def _with_rfnet_entry(**keys):
    """The paper profile with keys added to RFNet's model entry (keys params.yaml does not hold there)."""
    return load_params(["profile=paper"], extra_keys={"profiles": {"paper": {"models": {"rfnet": keys}}}})


def test_a_model_entry_augment_key_is_merged_over_the_protocol():
    settings = train_settings(_with_rfnet_entry(augment={"rotate": False}), "rfnet")
    assert not settings.augment.rotate and settings.augment.intensity_per_slice and settings.augment.flip


def test_per_model_batch_iterations_and_seed_override_the_protocol():
    settings = train_settings(_with_rfnet_entry(batch_size=4, steps_per_epoch=7, seed=5), "rfnet")
    assert (settings.batch_size, settings.steps_per_epoch, settings.seed) == (4, 7, 5)
    with pytest.raises(ConfigError, match=r"profiles\.paper\.models\.rfnet\.batch_size is 0; expected an integer"):
        train_settings(_with_rfnet_entry(batch_size=0), "rfnet")


def test_an_unknown_network_option_names_the_key():
    with pytest.raises(ConfigError, match=r"profiles\.paper\.models\.rfnet\.network has unknown option\(s\) "
                                          r"\['implementation'\]"):
        train_settings(_with_rfnet_entry(network={"implementation": "official"}), "rfnet")
    with pytest.raises(ConfigError, match=r"profiles\.paper\.models\.rfnet\.network is 3; expected a mapping"):
        train_settings(_with_rfnet_entry(network=3), "rfnet")
