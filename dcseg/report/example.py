"""The example case of reports/figures/example_case.png: which test case, and the three trained models' predictions
on it under the figure's subsets. The only part of the report that needs torch and the trained models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig

from dcseg.config import ConfigError
from dcseg.data.errors import DataError
from dcseg.evaluation import load_trained_model, evaluation_settings
from dcseg.inference import InferenceSettings, predict_labels
from dcseg.report.inputs import PREPROCESSED
from dcseg.report.layout import METHODS
from dcseg.runs import Run
from dcseg.subsets import Subset

if TYPE_CHECKING:  # annotations only: the manifest arrives loaded (dcseg.report.inputs.load_manifest)
    import pandas as pd


def choose_example_case(manifest: pd.DataFrame, figure_case: str | None, manifest_path: Path) -> str:
    """``figure_case`` (checked to be a test case), or the test case with the largest tumour core (NCR + ET voxels),
    among those with an enhancing tumour when any has one (the figure should show all three labels)."""
    test = manifest[manifest["split"] == "test"]
    if test.empty:
        raise DataError(f"{manifest_path} has no test cases")
    if figure_case is not None:
        if figure_case not in set(test["case"]):
            raise ConfigError(f"params key 'report.figure_case' is {figure_case!r}, not a test case of "
                              f"{manifest_path}; expected null or one of {sorted(test['case'])}")
        return figure_case
    missing = [c for c in ("n_ncr_net", "n_enhancing") if c not in manifest.columns]
    if missing:
        raise DataError(f"{manifest_path} lacks column(s) {missing} to find the largest tumour core; rerun the "
                        "preprocess stage or set report.figure_case")
    if (test["n_enhancing"] > 0).any():
        test = test[test["n_enhancing"] > 0]
    core = (test["n_ncr_net"] + test["n_enhancing"]).to_numpy()
    return str(test["case"].to_numpy()[int(core.argmax())])


def load_example_models(cfg: DictConfig, root: Path
                        ) -> tuple[dict[str, tuple[torch.nn.Module, InferenceSettings]], torch.device]:
    """The three trained models (checked against the preprocessed data) with their evaluation settings, on the
    evaluation's device (``profiles.<p>.evaluate.device``)."""
    models = {}
    for model_name in METHODS:
        settings, _, device, _ = evaluation_settings(cfg, model_name, warn=not models)
        run = Run(model_name)
        model, _ = load_trained_model(root / run.model_dir / "model.pt", run.identity(), root / PREPROCESSED, settings,
                                      device, f"profiles.{cfg.profile}.models.{model_name}.eval_patch")
        models[model_name] = (model, settings)
    return models, device


def predict_example_case(models: dict[str, tuple[torch.nn.Module, InferenceSettings]], image: np.ndarray,
                         subsets: tuple[Subset, ...], device: torch.device) -> dict[str, np.ndarray]:
    """Method label -> label maps ``[len(subsets), X, Y, Z]`` of one case."""
    masks = [s.mask for s in subsets]
    image = np.array(image)  # a memory map -> an in-memory array, read once for all models
    with torch.no_grad():
        return {METHODS[name]: predict_labels(model, image, settings, masks, device).numpy()
                for name, (model, settings) in models.items()}
