"""The two-modality WMH path at tiny widths: the task's subsets and masks, the three models with M = 2 and two
classes, the losses ignoring label 2 ("other pathology"), and the sampler drawing the task's masks."""

import dataclasses

import numpy as np
import pytest
import torch

from dcseg.data.sampler import AugmentConfig, TrainingSampler
from dcseg.data.preprocess import load_case, save_case
from dcseg.losses import dice_loss, total_loss, weighted_cross_entropy
from dcseg.models import MODEL_NAMES, TrainOutput
from dcseg.subsets import SUBSETS
from dcseg.tasks import BRATS, TASK_FILE, WMH, task_named

from .test_models import SIZE, TINY

IGNORED = WMH.ignore_label


def test_the_tasks_subsets_follow_the_papers_tables():
    assert [s.label for s in WMH.subsets] == ["T1", "FLAIR", "FLAIR+T1"]  # Table 3's rows
    assert WMH.masks == ((False, True), (True, False), (True, True))  # channel order FLAIR, T1
    assert WMH.num_modalities == 2 and WMH.num_classes == 2 and WMH.regions == {"WMH": (1,)} and IGNORED == 2
    assert BRATS.masks == tuple(s.mask for s in SUBSETS) and BRATS.ignore_label is None and len(BRATS.subsets) == 15
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
    # without masks, the sampler takes the store's task's: BraTS's 15 where the store names none, else its own
    assert TrainingSampler(tmp_path, ["scan"], 8, AugmentConfig(), seed=0).masks == BRATS.masks
    (tmp_path / TASK_FILE).write_text("wmh\n")
    assert TrainingSampler(tmp_path, ["scan"], 8, AugmentConfig(), seed=0).masks == WMH.masks


@pytest.fixture(scope="module")
def wmh_store(tmp_path_factory):
    """A tiny WMH phantom (3 subjects, 6 scans, 3 x 3 x 4 mm: one subject each for train, val, test) preprocessed
    through the WMH reader."""
    from dcseg.data.dataset import READERS, build_preprocessed
    from dcseg.data.splits import write_split
    from dcseg.data.wmh import subject_disjoint_split
    from dcseg.data.wmh_phantom import WmhPhantomConfig, generate

    root = tmp_path_factory.mktemp("wmh")
    stats = generate(WmhPhantomConfig(n_subjects=3, voxel_size=(3.0, 3.0, 4.0), other_pathology_fraction=0.5),
                     root / "raw", progress=False)
    split = subject_disjoint_split({row["scan"]: row["subject"] for row in stats}, seed=0)
    write_split(root / "split", split)
    build_preprocessed(root / "raw", root / "split", root / "pre", (32, 32, 32), progress=False,
                       reader=READERS["wmh_phantom"])
    return root / "pre", split


def test_the_store_records_its_task_and_keeps_label_2(wmh_store):
    from dcseg.tasks import task_of

    pre, split = wmh_store
    assert task_of(pre) is WMH and task_of(pre.parent) is BRATS  # no task.txt: BraTS
    image, label = load_case(pre, split["train"][0])
    assert image.shape[0] == 2 and set(np.unique(label).tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_train_and_evaluate_each_model_on_the_two_modality_store(wmh_store, tmp_path, name, one_thread):
    from dcseg.checkpoint import load_model
    from dcseg.convergence import ValidationConfig
    from dcseg.evaluation import evaluate_model, summarise
    from dcseg.inference import InferenceSettings
    from dcseg.training import TrainSettings, train
    from dcseg.wmh_metrics import WMH_METRICS

    from .ddp_settings import TINY as TINY_OPTIONS

    pre, split = wmh_store
    crop = 32 if name == "mmformer" else 16
    settings = TrainSettings(model=name, width="cpu", overrides=TINY_OPTIONS[name], steps=2, steps_per_epoch=1,
                             batch_size=2, crop=crop, checkpoint_every=1, log_every=1, precision="fp32",
                             channels_last=False, foreground_fraction=0.5,
                             validation=ValidationConfig(every=2, subsets=("t1", "flair+t1")), eval_patch=32)
    summary = train(settings, pre, tmp_path / "run", tmp_path / "ckpt.pt", progress=False)
    assert set(summary["validation"]["last"]) >= {"WMH", "mean"}
    model, meta = load_model(tmp_path / "run" / "model.pt")
    assert meta["overrides"]["num_modalities"] == 2 and meta["overrides"]["num_classes"] == 2
    rows = evaluate_model(model.eval(), pre, split["test"], InferenceSettings(patch=32, subset_batch=3), 500.0,
                          progress=False)
    assert list(rows.columns) == ["case", "subset", "region", *WMH_METRICS]
    assert len(rows) == len(split["test"]) * 3 and set(rows.subset) == {"t1", "flair", "flair+t1"}
    result = summarise(rows, WMH)
    assert list(result["subsets"]) == ["t1", "flair", "flair+t1"]  # Table 3's order
    assert 0 <= result["average"]["dice"]["WMH"] <= 1
    # a BraTS validation subset is refused on this data, naming the key
    with pytest.raises(Exception, match="validation subset 't1ce' is not one of the wmh data's subsets"):
        train(dataclasses.replace(settings, validation=ValidationConfig(every=1, subsets=("t1ce",))), pre,
              tmp_path / "bad", tmp_path / "bad.pt", progress=False)
