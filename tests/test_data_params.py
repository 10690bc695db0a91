"""The data stages check every setting they read before any work: one line naming the key, the value and what is
allowed, never a traceback."""

import dataclasses
import importlib.util
import subprocess
import sys

import pytest
from omegaconf import ListConfig

from dcseg.config import ConfigError, load_params
from dcseg.data.phantom import PhantomConfig

from .conftest import REPO


def _load_stage(name):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("override, message", [
    ("preprocess.min_size=abc", "preprocess.min_size is 'abc'; expected a list of 3 integers >= 1"),
    ("preprocess.min_size=[32.7,32,32]", "preprocess.min_size is [32.7, 32, 32]; expected a list of 3 integers >= 1"),
    ("preprocess.min_size=[0,32,32]", "preprocess.min_size is [0, 32, 32]; expected a list of 3 integers >= 1"),
    ("preprocess.min_size=[32,32]", "preprocess.min_size is [32, 32]; expected a list of 3 integers >= 1"),
    ("data.source=brats", "data.source is 'brats'; expected one of ['phantom', 'brats2020', 'wmh_phantom', 'wmh2017']"),
    ("data.root=3", "data.root is 3; expected a non-empty string"),
])
def test_preprocess_stage_refuses_bad_settings_before_any_work(tmp_path, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)  # the repository's params.yaml, outputs (none expected) here
    with pytest.raises(ConfigError) as info:
        _load_stage("preprocess").main([override])
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("override, message", [
    ("phantom.n_cases=0", "phantom.n_cases is 0; expected an integer >= 1"),
    ("phantom.n_cases=2.5", "phantom.n_cases is 2.5; expected an integer >= 1"),
    ("phantom.seed=-1", "phantom.seed is -1; expected an integer >= 0"),
    ("phantom.voxel_size=0", "phantom.voxel_size is 0; expected a number > 0"),
    ("phantom.margin=-1", "phantom.margin is -1; expected a number >= 0"),
    ("phantom.max_scale=1.0", "phantom.max_scale is 1.0; expected a number in [0, 1)"),
    ("phantom.wt_radius=[34,22]", "phantom.wt_radius is [34, 22]; expected [low, high] with low <= high"),
    ("phantom.wt_radius=abc", "phantom.wt_radius is 'abc'; expected [low, high]"),
    ("phantom.wt_radius=[0,22]", "phantom.wt_radius[0] is 0; expected a number > 0"),
    ("phantom.core_fraction=[0.5,1.2]", "phantom.core_fraction[1] is 1.2; expected a number in (0, 1]"),
    ("phantom.necrosis_fraction=[0,0.5]", "phantom.necrosis_fraction[0] is 0; expected a number in (0, 1]"),
    ("phantom.no_enhancing_fraction=1.5", "phantom.no_enhancing_fraction is 1.5; expected a number in [0, 1]"),
    ("phantom.contrast_jitter=1", "phantom.contrast_jitter is 1; expected a number in [0, 1)"),
    ("phantom.noise=-0.1", "phantom.noise is -0.1; expected a number >= 0"),
    ("phantom.noise=yes", "phantom.noise is True; expected a number >= 0"),  # YAML reads yes as true
    ("phantom.bias_field=maybe", "phantom.bias_field is 'maybe'; expected a number >= 0"),
    ("split.seed=maybe", "split.seed is 'maybe'; expected an integer >= 0"),
    ("split.seed=1.5", "split.seed is 1.5; expected an integer >= 0"),
    ("data.source=brats", "data.source is 'brats'; expected one of ['phantom', 'brats2020']"),
    ("data.root=''", "data.root is ''; expected a non-empty string"),
])
def test_phantom_stage_refuses_bad_settings_before_writing_anything(tmp_path, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        _load_stage("phantom").main([override])
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


def test_the_committed_phantom_params_pass_unchanged():
    section = load_params().phantom
    pcfg = PhantomConfig.from_dict(section)
    for key, value in section.items():
        assert getattr(pcfg, key) == (tuple(value) if isinstance(value, ListConfig) else value), key
    assert isinstance(pcfg.wt_radius, tuple)


def test_every_phantom_param_has_a_check_and_its_default_passes():
    for f in dataclasses.fields(PhantomConfig):
        assert f.metadata["check"](f"phantom.{f.name}", f.default) == f.default, f.name


def test_phantom_section_must_be_a_mapping_and_keys_known():
    with pytest.raises(ConfigError, match=r"^phantom is 3; expected a mapping of PhantomConfig settings$"):
        PhantomConfig.from_dict(3)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['phantom\.noise_level'\]"):
        PhantomConfig.from_dict({"noise_level": 0.1})


def test_min_size_abc_in_params_yaml_is_one_line_from_the_stage(tmp_path):
    """What `dvc exp run -S preprocess.min_size=abc` runs: params.yaml holds the bad value, no override."""
    params = (REPO / "params.yaml").read_text()
    assert "  min_size: [32, 32, 32]" in params
    (tmp_path / "params.yaml").write_text(params.replace("  min_size: [32, 32, 32]", "  min_size: abc"))
    p = subprocess.run([sys.executable, str(REPO / "stages" / "preprocess.py")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert p.stderr == "preprocess: error: preprocess.min_size is 'abc'; expected a list of 3 integers >= 1\n"
