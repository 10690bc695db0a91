"""The Fig. 3 representations (dcseg/representations.py): the window, the shapes taken from a tiny DC-Seg, the runs the
stage measures, and the numbers on tiny preprocessed data."""

import numpy as np
import pytest
import torch

from dcseg.data.errors import DataError
from dcseg.registry import build_model
from dcseg.representations import (anatomy_similarity, case_representations, centre_crop, centre_window, figure_runs,
                                   measure_run)
from dcseg.runs import Run


def _tiny(**options):
    torch.manual_seed(0)
    return build_model("dcseg", base_channels=4, modality_encoder_widths=(4, 4, 8, 8, 8), **options).eval()


def test_centre_window():
    assert centre_window((30, 26, 24), 24) == (slice(3, 27), slice(1, 25), slice(0, 24))
    with pytest.raises(DataError, match="smaller than the evaluation window 24; raise preprocess.min_size"):
        centre_window((30, 20, 24), 24)
    image = np.arange(2 * 30 * 26 * 24).reshape(2, 30, 26, 24)
    assert np.array_equal(centre_crop(image, 24), image[:, 3:27, 1:25, 0:24])


def test_representations_are_the_l_ana_level_maps_and_the_modality_codes(one_thread):
    model = _tiny()
    image = np.random.default_rng(0).normal(size=(4, 28, 26, 24)).astype(np.float32)
    anatomy, codes = case_representations(model, image, 24)
    with torch.no_grad():
        window = torch.from_numpy(image[:, 2:26, 1:25, 0:24].copy())[None]
        expected = model.encode(window)[model.config.anatomy_level][0]
    assert anatomy.shape == tuple(expected.shape) and anatomy.shape[0] == 4
    assert np.allclose(anatomy, expected.numpy())
    assert codes.shape[0] == 4 and codes.ndim == 2
    # the run's own similarity: a map is most similar to itself
    similarity = anatomy_similarity(model, anatomy, 1e-4, 9e-4)
    assert similarity.shape == (4, 4) and np.allclose(np.diag(similarity), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="no modality encoders"):
        case_representations(_tiny(with_modality_encoder=False, with_reconstruction=False), image, 24)


def test_figure_runs_follow_the_seeds_and_skip_untrained_ones():
    every = lambda run: True  # noqa: E731
    runs = figure_runs({"seeds": {"main": [0, 1], "ablation": [0]}}, every)
    assert [r.name for r in runs] == ["dcseg_seed0", "dcseg_no_contrastive_seed0", "dcseg_no_ana_seed0",
                                      "dcseg_no_mod_seed0"]
    assert figure_runs({"seeds": {"main": [0], "ablation": []}}, every) == [Run("dcseg", seed=0)]
    # an ablation seed that is no main seed: full from the first main seed
    assert figure_runs({"seeds": {"main": [0, 1], "ablation": [2]}}, every)[0] == Run("dcseg", seed=0)
    assert [r.name for r in figure_runs({"seeds": {"main": [0], "ablation": [0]}}, lambda r: r.variant != "no_ana")
            ] == ["dcseg_seed0", "dcseg_no_contrastive_seed0", "dcseg_no_mod_seed0"]


def test_measure_run_on_tiny_cases(tiny_data, one_thread):
    cases = [f"BraTS20_Training_{i:03d}" for i in range(1, 6)]
    result = measure_run(_tiny(), tiny_data, cases, 24, 1e-4, 9e-4)
    assert result["anatomy"].shape[:2] == (5, 4) and result["codes"].shape[:2] == (5, 4)
    numbers = result["numbers"]
    assert numbers.cases == 5 and numbers.modalities == 4 and numbers.chance_retrieval == pytest.approx(0.2)
    assert 0 <= numbers.case_retrieval <= 1 and 0 <= numbers.modality_identification <= 1
    assert 0 <= result["input"]["case_retrieval"] <= 1  # the raw windows, scored with the same retrieval


def test_the_input_reference_on_windows_identical_within_each_case():
    from dcseg.disentanglement import item_labels
    from dcseg.representations import input_reference

    case, _ = item_labels(3, 2)
    similarity = np.where(case[:, None] == case[None, :], 1.0, 0.2)  # every modality of a case looks the same
    reference = input_reference(similarity, 3, 2)
    assert reference == pytest.approx({"case_retrieval": 1.0, "same_case_similarity": 1.0,
                                       "different_case_similarity": 0.2})


def test_the_figure_is_written(tmp_path):
    from dcseg.disentanglement import disentanglement
    from dcseg.representations import draw

    rng = np.random.default_rng(0)
    codes = np.stack([np.eye(4) + 0.1 * rng.normal(size=(4, 4)) for _ in range(5)])
    anatomy = rng.normal(size=(5, 4, 2, 3, 3, 3))
    result = {"anatomy": anatomy, "codes": codes, "numbers": disentanglement(np.eye(20), codes)}
    draw({"full": result, "no_ana": result}, ("FLAIR", "T1ce", "T1", "T2"), tmp_path / "fig.png", seed=0)
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
