"""params.yaml is the single source of truth; every stage reads it here, with optional command-line overrides.

``python stages/train.py model=rfnet train.steps=10`` works like ``dvc exp run -S train.steps=10``: overrides use
OmegaConf's dotlist grammar, and a key that params.yaml does not define fails loudly with its name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS = REPO_ROOT / "params.yaml"


class ConfigError(KeyError):
    """A bad key or value in params.yaml or on the command line."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def load_params(overrides: list[str] | None = None, path: str | Path | None = None,
                extra_keys: dict | None = None) -> DictConfig:
    """Load params.yaml (default: the one in the current directory, else the repository's) and apply
    ``key=value`` overrides. ``extra_keys`` are stage-level keys that params.yaml does not hold (e.g. ``model``)."""
    if path is None:
        path = Path("params.yaml") if Path("params.yaml").is_file() else DEFAULT_PARAMS
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml errors
        raise ConfigError(f"cannot parse {path}: {e}") from e
    if extra_keys:
        cfg = OmegaConf.merge(cfg, extra_keys)
    OmegaConf.set_struct(cfg, True)
    apply_overrides(cfg, overrides or [], path)
    return cfg


def apply_overrides(cfg: DictConfig, overrides: list[str], source: str | Path) -> None:
    """Apply ``key=value`` overrides in place; a key that ``source`` (the params file) lacks fails with its name."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key = item.split("=", 1)[0]
        try:
            cfg.merge_with_dotlist([item])
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise ConfigError(f"unknown key {key!r} in override {item!r} (not in {source})") from e
        except OmegaConfBaseException as e:
            raise ConfigError(f"bad override {item!r}: {e}") from e


def require(cfg: DictConfig, key: str):
    """Value at dotted ``key``; a missing key fails with its name. (Checking the value: ``dcseg.validate``.)"""
    value = OmegaConf.select(cfg, key, throw_on_missing=True, default=_MISSING)
    if value is _MISSING:
        raise ConfigError(f"params key {key!r} is missing")
    return value


_MISSING = object()

PROFILES = ("cpu", "paper")  # the params profiles (params.yaml ``profiles``); ``profile`` picks one


def to_dict(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def params_hash(*sections) -> str:
    """Short stable hash of config sections (for checkpoints and report headers)."""
    blob = json.dumps([to_dict(s) if isinstance(s, DictConfig) else s for s in sections], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
