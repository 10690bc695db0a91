"""The two-modality WMH path at tiny widths: the task's subsets and masks, the three models with M = 2 and two
classes, the losses ignoring label 2 ("other pathology"), and the sampler drawing the task's masks."""

import numpy as np
import pytest
import torch

from dcseg.data.sampler import AugmentConfig, TrainingSampler
from dcseg.data.preprocess import save_case
from dcseg.losses import dice_loss, total_loss, weighted_cross_entropy
from dcseg.models import MODEL_NAMES, TrainOutput
from dcseg.subsets import SUBSET_MASKS
from dcseg.tasks import BRATS, WMH, task_named

from .test_models import SIZE, TINY

IGNORED = WMH.ignore_label


def test_the_tasks_subsets_follow_the_papers_tables():
    assert [s.label for s in WMH.subsets] == ["T1", "FLAIR", "FLAIR+T1"]  # Table 3's rows
    assert WMH.masks == ((False, True), (True, False), (True, True))  # channel order FLAIR, T1
    assert WMH.num_modalities == 2 and WMH.num_classes == 2 and WMH.regions == {"WMH": (1,)} and IGNORED == 2
    assert BRATS.masks == SUBSET_MASKS and BRATS.ignore_label is None and len(BRATS.subsets) == 15
    assert task_named("wmh") is WMH
    with pytest.raises(KeyError, match="unknown task 'isles'"):
        task_named("isles")


def _labels(shape, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 0, 0, 1, 2], size=shape)
    return torch.from_numpy(labels).long()


def test_ignored_voxels_take_no_part_in_the_segmentation_losses():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 6, 6, 6)
    labels = _labels((2, 6, 6, 6))
    ignored = labels == IGNORED
    changed = logits.clone()
    changed[:, 1][ignored] += 5.0  # any prediction at an ignored voxel (class 1 only: softmax is shift-invariant)
    for loss in (weighted_cross_entropy, dice_loss):
        assert torch.isfinite(loss(logits, labels, IGNORED))
        assert torch.allclose(loss(logits, labels, IGNORED), loss(changed, labels, IGNORED))
        assert not torch.allclose(loss(logits, labels.clamp_max(1)), loss(changed, labels.clamp_max(1)))
    # with nothing ignored the loss is the plain one
    plain = labels.clamp_max(1)
    assert torch.equal(dice_loss(logits, plain, IGNORED), dice_loss(logits, plain))
    assert torch.allclose(weighted_cross_entropy(logits, plain, IGNORED), weighted_cross_entropy(logits, plain))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_trains_and_predicts_with_two_modalities_and_two_classes(name, one_thread):
    from dcseg.registry import build_model

    torch.manual_seed(0)
    options = {**TINY[name], "num_modalities": WMH.num_modalities, "num_classes": WMH.num_classes}
    if name == "mmformer":
        options["crop_size"] = SIZE[name]
    model = build_model(name, **options)
    x = torch.randn(2, 2, *SIZE[name])
    mask = torch.tensor([WMH.masks[0], WMH.masks[2]])
    labels = _labels((2, *SIZE[name]), seed=1)
    model.train()
    out = model(x, mask)
    assert isinstance(out, TrainOutput) and out.fused_logits.shape == (2, 2, *SIZE[name])
    loss, parts = total_loss(out, labels, x, ignore_label=IGNORED)
    assert torch.isfinite(loss)
    loss.backward()
    # every modality's encoder learns (a two-modality model has exactly two of each per-modality module)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    if name == "dcseg":
        assert out.anatomy.shape[1] == 2 and out.modality_vectors.shape[1] == 2 and "ana" in parts
    model.eval()
    with torch.no_grad():
        assert model(x, mask).shape == (2, 2, *SIZE[name])
    with pytest.raises(ValueError, match=r"expected x of shape \[B, 2"):
        model(torch.randn(1, 4, *SIZE[name]), torch.ones(1, 4, dtype=torch.bool))


def test_the_sampler_draws_the_tasks_masks_and_ignores_label_2_as_foreground(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:4, 2:4, 2:4] = 2  # only "other pathology": no foreground to centre a crop on
    save_case(tmp_path, "scan", rng.normal(size=(2, 20, 20, 20)).astype(np.float32), labels)
    sampler = TrainingSampler(tmp_path, ["scan"], 8, AugmentConfig(flip=False), seed=0, foreground_fraction=1.0,
                              masks=WMH.masks, ignore_label=IGNORED)
    assert len(sampler.foreground[0]) == 0
    masks = {tuple(sampler.sample(step, 0, 1)[2].tolist()) for step in range(30)}
    assert masks == set(WMH.masks)
