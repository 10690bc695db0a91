"""One trainer for every model: the RFNet protocol (``docs/reference.md`` §Augmentation, §Losses, §Optimisation).

- Adam with amsgrad, L2 weight decay 1e-4 coupled as in the references (not AdamW), none on DC-Seg's
  temperatures; base lr 2e-4 with a poly 0.9 schedule that steps once per epoch; RFNet's fuse-loss warm-up
  (the fused-prediction loss has weight 0 for the first ``fuse_warmup_epochs`` epochs).
- Batches from :class:`dcseg.data.sampler.TrainingSampler`: a pure function of (seed, step).
- A checkpoint every ``checkpoint_every`` steps to a persistent path outside DVC's outputs (DVC deletes outputs
  before it reruns a stage). It holds the weights, the optimiser, the torch RNG (mmFormer's dropout) and the
  logged history, so a run killed at any point resumes from its last checkpoint and ends with the same weights
  as an uninterrupted run. A checkpoint from another model, config or dataset is ignored, with a message.
- dvclive logs per-step and per-epoch metrics, and the validation Dice every ``validation.every`` steps
  (``dcseg.convergence``: scored without touching the training's random stream), so ``dvc plots show`` draws the
  curves.
- A run's seed is its configured seed (protocol < model entry) plus its seed index (``dcseg.runs.Run.seed``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from dcseg.io import atomic_dir, replace_dir, staging_dir
from dcseg.checkpoint import (CheckpointError, checkpoint_record, data_fingerprint, load_file, model_record,
                              restore_checkpoint, save_atomic)
from dcseg import validate
from dcseg.config import PROFILES, ConfigError, params_hash, require, to_dict
from dcseg.convergence import MEAN, ValidationConfig, curve_summary, due, score_validation
from dcseg.data.manifest import read_manifest
from dcseg.data.sampler import AugmentConfig, TrainingSampler
from dcseg.data.splits import read_split
from dcseg.distributed import current_context, gather_floats, mean_over_ranks
from dcseg.hardware import DEVICES, PRECISIONS, autocast, memory_format, resolve
from dcseg.losses import LossTerms, total_loss
from dcseg.models.blocks import input_size_problem
from dcseg.models import MODEL_NAMES
from dcseg.registry import WIDTHS, build_model, model_divisor, model_option_names
from dcseg.subsets import subset_by_name
from dcseg.tasks import BRATS, task_of


@dataclass(frozen=True)
class TrainSettings:
    model: str
    variant: str | None = None              # a Table 2 variant (an ablation run of DC-Seg); None: the model as published
    width: str = "cpu"                      # network widths (dcseg.registry.WIDTHS)
    overrides: dict = field(default_factory=dict)  # model config overrides (e.g. an ablation variant)
    network: dict = field(default_factory=dict)     # model config options from params (the model entry's `network`)
    terms: dict | None = None               # LossTerms fields; None = every term the model has
    steps: int = 600
    steps_per_epoch: int = 30
    batch_size: int = 2
    crop: int = 64
    lr: float = 2e-4
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    fuse_warmup_epochs: int = 0
    seed: int = 1024                        # the seed the run trains with: configured seed + seed_index
    seed_index: int = 0                     # the run's index on the seed dimension (params.yaml ``seeds``)
    foreground_fraction: float = 0.0         # share of crops forced to contain tumour (0: the references)
    precision: str = "auto"                 # auto | fp32 | bf16 (dcseg.hardware: auto = bf16 only where native)
    channels_last: bool | str = "auto"      # auto | true | false
    device: str = "auto"                    # auto | cpu | cuda
    checkpoint_every: int = 50
    log_every: int = 10
    augment: AugmentConfig = AugmentConfig()
    validation: ValidationConfig = ValidationConfig()
    eval_patch: int | None = None           # the validation's window (the model entry's eval_patch); None: the crop
    alpha: float = 0.4
    ssim_c1: float = 1e-4
    ssim_c2: float = 9e-4

    @property
    def epochs(self) -> int:
        return max(1, -(-self.steps // self.steps_per_epoch))

    def identity(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = dataclasses.asdict(self.augment)
        d["validation"] = dataclasses.asdict(self.validation)
        return d


# keys a model's entry (profiles.<p>.models.<model>) or the ablation schedule may set over the shared protocol
# (the references differ in batch size, iterations per epoch, seed and augmentation; `network` holds options of the
# model's config dataclass, e.g. DC-Seg's `implementation`). `augment` is merged key by key into the protocol's.
PER_MODEL_KEYS = ("crop", "fuse_warmup_epochs", "steps", "steps_per_epoch", "batch_size", "seed", "width",
                  "precision", "lr", "augment", "network")
EVALUATION_KEYS = ("eval_patch",)  # the model entry's keys that the evaluation reads, not the training
# TrainSettings fields that come from the run or the loss section, never from the training params
NOT_TRAINING_PARAMS = ("model", "variant", "overrides", "terms", "alpha", "ssim_c1", "ssim_c2", "seed_index",
                       "eval_patch")


def layered_settings(cfg, profile: str, model: str, ablation: bool, command_line: tuple[str, ...] = ()
                     ) -> tuple[dict, dict]:
    """The one precedence rule for every layered training setting, lowest first:

        shared protocol (profiles.<p>.train) < the model's entry (profiles.<p>.models.<model>)
        < the ablation schedule (profiles.<p>.ablation; ablation runs only) < the stage's command line

    ``command_line``: the full params keys the stage's own arguments set (``python stages/train.py dcseg
    train.steps=10`` sets ``profiles.<p>.train.steps``): whichever layer such a key names, its value wins, so the
    command line always means what it says. A ``dvc exp run -S`` edits params.yaml instead, so there the layers
    apply as written. Returns (settings by name, the full key each one came from: error messages name it)."""
    prefix = f"profiles.{profile}"
    entry = to_dict(require(cfg, f"{prefix}.models.{model}"))
    unknown = sorted(set(entry) - set(PER_MODEL_KEYS) - set(EVALUATION_KEYS))
    if unknown:
        raise ConfigError(f"{prefix}.models.{model} has unknown key(s) {unknown}; expected some of "
                          f"{list(PER_MODEL_KEYS) + list(EVALUATION_KEYS)}")
    layers = [(f"{prefix}.train", to_dict(require(cfg, f"{prefix}.train")), None),
              (f"{prefix}.models.{model}", entry, PER_MODEL_KEYS)]
    if ablation:
        schedule = to_dict(require(cfg, f"{prefix}.ablation"))
        unknown = sorted(set(schedule) - set(PER_MODEL_KEYS))
        if unknown:
            raise ConfigError(f"{prefix}.ablation has unknown key(s) {unknown}; expected some of {list(PER_MODEL_KEYS)}")
        layers.append((f"{prefix}.ablation", schedule, None))
    values, sources = {}, {}
    for section, layer, allowed in layers:
        for name, value in layer.items():
            if allowed is None or name in allowed:
                if name == "augment" and isinstance(value, dict) and isinstance(values.get(name), dict):
                    value = {**values[name], **value}  # a model's own augmentation keys over the protocol's
                values[name], sources[name] = value, f"{section}.{name}"
    for key in command_line:  # the top layer, in the order given
        for section, layer, allowed in layers:
            if key.startswith(section + "."):
                name = key[len(section) + 1:].split(".")[0]
                if name in layer and (allowed is None or name in allowed):
                    values[name], sources[name] = layer[name], f"{section}.{name}"
    return values, sources


def _check_training_values(values: dict, sources: dict) -> None:
    """Every training setting in its range; a bad one fails with its full key, its value and what is allowed."""
    checks = {
        "steps": validate.positive_int, "steps_per_epoch": validate.positive_int,
        "batch_size": validate.positive_int, "crop": validate.positive_int,
        "checkpoint_every": validate.positive_int, "log_every": validate.positive_int,
        "lr": validate.positive, "weight_decay": validate.non_negative, "poly_power": validate.non_negative,
        "fuse_warmup_epochs": validate.non_negative_int, "seed": validate.non_negative_int,
        "foreground_fraction": validate.fraction,
        "precision": lambda k, v: validate.choice(k, v, PRECISIONS),
        "device": lambda k, v: validate.choice(k, v, DEVICES),
        "channels_last": lambda k, v: v if v == "auto" else validate.boolean(k, v),
        "width": lambda k, v: validate.choice(k, v, tuple(WIDTHS)),
        "network": lambda k, v: v if isinstance(v, dict) else validate.fail(k, v, "a mapping of model options"),
    }
    for name, check in checks.items():
        if name in values:
            values[name] = check(sources[name], values[name])


# x * U(1 - s, 1 + s) + U(-b, b): s >= 1 could flip an intensity's sign
AUGMENT_CHECKS = {"rotate": validate.boolean, "flip": validate.boolean, "intensity_per_slice": validate.boolean,
                  "intensity_scale": validate.half_open_fraction, "intensity_shift": validate.half_open_fraction}


def train_settings(cfg, model: str, overrides: dict | None = None, terms: dict | None = None,
                         ablation: bool = False, command_line: tuple[str, ...] = (), variant: str | None = None,
                         seed_index: int = 0) -> TrainSettings:
    """TrainSettings for ``model`` under the selected profile (params.yaml ``profile``), layered by
    ``layered_settings`` and checked. ``command_line``: the full keys the stage's arguments set; ``seed_index``:
    the run's seed index, added to the configured seed."""
    if model not in MODEL_NAMES:
        raise ConfigError(f"unknown model {model!r}; expected one of {MODEL_NAMES}")
    profile = validate.choice("profile", require(cfg, "profile"), PROFILES)
    kw, sources = layered_settings(cfg, profile, model, ablation, tuple(command_line))
    kw["augment"] = validate.dataclass_from(AugmentConfig, kw.get("augment", {}),
                                            sources.get("augment", f"profiles.{profile}.train.augment"), AUGMENT_CHECKS)
    kw["validation"] = validate.dataclass_from(ValidationConfig, kw.get("validation", {}),
                                               sources.get("validation", f"profiles.{profile}.train.validation"))
    known = {f.name for f in dataclasses.fields(TrainSettings)} - set(NOT_TRAINING_PARAMS)
    unknown = sorted(set(kw) - known)
    if unknown:
        raise ConfigError(f"unknown training key(s) {[sources[k] for k in unknown]}; expected some of {sorted(known)}")
    _check_training_values(kw, sources)
    if model == "dcseg":
        loss = to_dict(require(cfg, "loss"))
        kw.update(alpha=validate.non_negative("loss.alpha", loss["alpha"]),
                  ssim_c1=validate.positive("loss.ssim_c1", loss["ssim_c1"]),
                  ssim_c2=validate.positive("loss.ssim_c2", loss["ssim_c2"]))
    if "seed" in kw:
        kw["seed"] += validate.non_negative_int("seed index", seed_index)
    patch_key = f"profiles.{profile}.models.{model}.eval_patch"
    eval_patch = OmegaConf.select(cfg, patch_key, default=None)
    if eval_patch is not None:
        eval_patch = validate.positive_int(patch_key, eval_patch)
    settings = TrainSettings(model=model, variant=variant, overrides=dict(overrides or {}), terms=terms,
                             seed_index=seed_index, eval_patch=eval_patch, **kw)
    check_network_options(model, settings.network, sources.get("network", ""))
    for key, size in ((sources["crop"], settings.crop), (patch_key, eval_patch)):
        problem = size and input_size_problem((size,) * 3, model_divisor(model))
        if problem:
            raise ConfigError(f"{key} is {size}; {model}: {problem}")
    return settings


def check_network_options(model: str, network: dict, key: str) -> None:
    """A model entry's ``network`` options must be fields of the model's config (an ablation variant's own options
    are set by the run, not here)."""
    fields = model_option_names(model)
    unknown = sorted(set(network) - set(fields))
    if unknown:
        raise ConfigError(f"{key} has unknown option(s) {unknown}; {model}'s options: {sorted(fields)}")


def check_crop_fits(settings: TrainSettings, preprocessed_dir: str | Path, train_ids: list[str]) -> None:
    """A crop larger than a training volume cannot be drawn from it: refuse it before training starts."""
    manifest = read_manifest(preprocessed_dir, ("case", "x", "y", "z")).set_index("case")
    rows = manifest[manifest.index.isin(train_ids)]
    if rows.empty:
        return
    smallest = rows[["x", "y", "z"]].min(axis=0)
    if (smallest < settings.crop).any():
        case = rows[["x", "y", "z"]].min(axis=1).idxmin()
        raise ConfigError(f"train {settings.model}: crop {settings.crop} is larger than the smallest preprocessed "
                          f"training volume {tuple(int(v) for v in smallest)} (e.g. {case}); lower the model's crop "
                          "or raise preprocess.min_size")


def poly_lr(base_lr: float, epoch: int, epochs: int, power: float) -> float:
    """The references' per-epoch poly schedule, rounded to 8 decimals as they do."""
    return round(base_lr * (1 - epoch / epochs) ** power, 8)


def _param_groups(model, weight_decay):
    no_decay = set(getattr(model, "no_weight_decay_parameters", lambda: [])())
    decay = [p for n, p in model.named_parameters() if p.requires_grad and n not in no_decay]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and n in no_decay]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if rest:
        groups.append({"params": rest, "weight_decay": 0.0})
    return groups


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(settings: TrainSettings, preprocessed_dir: str | Path, out_dir: str | Path, checkpoint_path: str | Path,
          progress: bool = True, stop_at_step: int | None = None, log_dir: str | Path | None = None) -> dict:
    """Train, resuming from ``checkpoint_path`` when it holds a matching checkpoint. Writes ``out_dir/model.pt``
    (DVC-cached) and, in ``log_dir`` (default ``out_dir``; the pipeline's is git-tracked), ``train_summary.json``
    and the dvclive logs ``live/``. Each folder is built beside its place and replaces the old one whole at the
    end: a failed or killed run leaves the previous folders as they were.

    ``stop_at_step`` ends the run early without writing the model (it simulates a crash, for tests).
    """
    from dvclive import Live

    out_dir, checkpoint_path = Path(out_dir), Path(checkpoint_path)
    log_dir = Path(log_dir) if log_dir is not None else out_dir
    # each folder is replaced whole at the end: one inside the other would be deleted with it
    for inner, outer in ((out_dir, log_dir), (log_dir, out_dir)):
        if inner.resolve() != outer.resolve() and inner.resolve().is_relative_to(outer.resolve()):
            raise ConfigError(f"train {settings.model}: {inner} lies inside {outer}; the model and log folders must be "
                              "the same folder or two separate ones")
    data_hash = data_fingerprint(preprocessed_dir)
    ctx = current_context()  # torchrun: this process's rank (dcseg.distributed); a single process otherwise
    # `auto` resolves here (dcseg.hardware); what it resolved to is part of the run's identity: a checkpoint written
    # under another precision, layout or device would not continue the same trajectory
    device, hardware = resolve(settings.device, settings.precision, settings.channels_last, ctx.local_rank,
                               warn=ctx.is_main)
    resolved = {"device": hardware.device, "precision": hardware.precision, "channels_last": hardware.channels_last}
    identity = {"settings": settings.identity(), "data_hash": data_hash, "resolved": resolved}
    fingerprint = params_hash(identity)
    if ctx.is_main:
        print(f"train {settings.model}: {hardware.describe()} (precision {settings.precision}, "
              f"channels_last {settings.channels_last}, device {settings.device})")
    if settings.batch_size % ctx.world_size:
        raise ConfigError(f"train {settings.model}: batch_size {settings.batch_size} does not split over "
                          f"{ctx.world_size} processes; use a multiple of the world size")

    split = read_split(Path(preprocessed_dir) / "split")
    train_ids = split["train"]
    check_crop_fits(settings, preprocessed_dir, train_ids)
    task = task_of(preprocessed_dir)  # the data's modalities, subsets, classes and ignored label (dcseg.tasks)
    _check_validation_subsets(settings, task)
    validation = _validation_inference(settings, hardware, split.get("val", []))
    sampler = TrainingSampler(preprocessed_dir, train_ids, settings.crop, settings.augment, settings.seed,
                              foreground_fraction=settings.foreground_fraction, masks=task.masks,
                              ignore_label=task.ignore_label)

    torch.manual_seed(settings.seed)
    overrides = {**settings.network, **settings.overrides}  # a variant's own options win
    if settings.model == "mmformer":
        overrides.setdefault("crop_size", settings.crop)
    if task is not BRATS:  # (the networks' defaults are BraTS's: M = 4, 4 classes; the model file records these)
        overrides.update(num_modalities=task.num_modalities, num_classes=task.num_classes)
    model = build_model(settings.model, width=settings.width, **overrides)
    # (maps <= 2 voxels wide run in fp32 under CPU bf16 autocast: dcseg.models.blocks.ConvBlock)
    layout = memory_format(hardware.channels_last)
    model = model.to(device=device, memory_format=layout)
    optimiser = torch.optim.Adam(_param_groups(model, settings.weight_decay), lr=settings.lr, betas=(0.9, 0.999),
                                 eps=1e-8, amsgrad=True)
    terms = LossTerms(**settings.terms) if settings.terms is not None else None

    start_step, history, epoch_losses = 0, [], []
    if checkpoint_path.is_file():
        try:
            ckpt = load_file(checkpoint_path)
        except CheckpointError as e:
            print(f"train: ignoring unreadable checkpoint ({e})")
            ckpt = None
        if ckpt is not None and ckpt.get("fingerprint") == fingerprint:
            # every rank resumes from the same file
            start_step, history, epoch_losses = restore_checkpoint(ckpt, model, optimiser, device, ctx.rank)
            if ctx.is_main:
                print(f"train: resuming {settings.model} from step {start_step} ({checkpoint_path})")
        elif ckpt is not None and ctx.is_main:
            print(f"train: not resuming {checkpoint_path}: {_why_not_resumed(ckpt, identity)}; starting afresh")

    same_dir = log_dir.resolve() == out_dir.resolve()
    with _staging(log_dir, ctx.is_main) as staged_logs:
        live = Live(str(staged_logs / "live"), dvcyaml=None, save_dvc_exp=False, report=None) if ctx.is_main else None
        for row in history if live else []:  # replay the logged history of the interrupted run: complete curves
            _log(live, row)

        forward = model
        if ctx.world_size > 1:  # DDP averages the gradients of the ranks' shares of each global batch
            device_ids = [device.index] if device.type == "cuda" else None
            forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        model.train()
        seconds, timed_steps, validation_seconds = 0.0, 0, 0.0
        bar = tqdm(range(start_step, settings.steps), initial=start_step, total=settings.steps,
                   desc=f"train {settings.model}", unit="step", disable=not (progress and ctx.is_main),
                   dynamic_ncols=True)
        for step in bar:
            if stop_at_step is not None and step >= stop_at_step:
                if live:
                    live.end()
                bar.close()
                return {"stopped_at": step}
            epoch = step // settings.steps_per_epoch
            lr = poly_lr(settings.lr, epoch, settings.epochs, settings.poly_power)
            for g in optimiser.param_groups:
                g["lr"] = lr
            x, y, mask = sampler.batch(step, settings.batch_size, ctx.rank, ctx.world_size)
            x = torch.from_numpy(x).to(device).contiguous(memory_format=layout)
            y, mask = torch.from_numpy(y).to(device), torch.from_numpy(mask).to(device)

            t0 = time.perf_counter()
            with autocast(hardware.precision, device):
                output = forward(x, mask)
            loss, parts = total_loss(output, y, x, alpha=settings.alpha,
                                     fuse_weight=0.0 if epoch < settings.fuse_warmup_epochs else 1.0, terms=terms,
                                     ssim_c1=settings.ssim_c1, ssim_c2=settings.ssim_c2, ignore_label=task.ignore_label)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"train {settings.model}: loss is {loss.item()} at step {step}; parts "
                                         f"{ {k: float(v) for k, v in parts.items()} }")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if step > start_step:  # the first step includes one-off allocation
                seconds += time.perf_counter() - t0
                timed_steps += 1

            last_loss = loss.item()
            epoch_losses.append(last_loss)
            row = None
            if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
                names = list(parts)  # logged as the mean over ranks: the loss of the global batch
                values = mean_over_ranks(torch.stack([parts[k].detach().float() for k in names])).tolist()
                losses = {f"train/loss/{k}": round(v, 6) for k, v in zip(names, values)}
                row = {"step": step + 1, "train/lr": lr, **losses}
            if (step + 1) % settings.steps_per_epoch == 0 or step + 1 == settings.steps:
                row = row or {"step": step + 1}
                row["epoch/index"] = epoch + 1
                epoch_loss = torch.tensor(float(np.mean(epoch_losses)), device=device)
                row["epoch/loss"] = round(mean_over_ranks(epoch_loss).item(), 6)
                epoch_losses = []
            if validation is not None and ctx.is_main and due(step + 1, settings.steps, settings.validation.every):
                row = row or {"step": step + 1}
                t_val = time.perf_counter()
                scores = _score_isolated(model, preprocessed_dir, split["val"], settings, validation, device)
                validation_seconds += time.perf_counter() - t_val
                row.update({f"val/dice/{k}": round(v, 6) for k, v in scores.items()})
            if row is not None:
                history.append(row)
                if live:
                    _log(live, row)
                bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr:.1e}")
            if (step + 1) % settings.checkpoint_every == 0 and step + 1 < settings.steps:
                # every rank's losses of the epoch under way (a collective, so every rank takes part): the epoch's
                # logged loss is the mean over ranks of each rank's mean, and each rank resumes with its own
                partial = gather_floats(epoch_losses, device)
                if ctx.is_main:
                    save_atomic(checkpoint_record(fingerprint, resolved, step + 1, model, optimiser, history,
                                                  partial, device), checkpoint_path)
        if live:
            live.end()
        if ctx.world_size > 1:
            check_ranks_in_sync(model)
            if not ctx.is_main:
                return {"model": settings.model, "steps": settings.steps, "rank": ctx.rank}

        model = model.to(memory_format=torch.contiguous_format)
        record = model_record(settings.model, settings.width, overrides, model, variant=settings.variant,
                              options=settings.overrides, seed=settings.seed, seed_index=settings.seed_index,
                              data_hash=data_hash,
                              params_hash=fingerprint, steps=settings.steps)
        summary = {
            "model": settings.model,
            "steps": settings.steps,
            "resumed_from_step": start_step,
            "seconds_per_step": round(seconds / max(timed_steps, 1), 4),
            "train_seconds_this_run": round(seconds, 1),
            "validation_seconds_this_run": round(validation_seconds, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "final_epoch_loss": history[-1].get("epoch/loss") if history else None,
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "world_size": ctx.world_size,
            "device": str(device),
            "hardware": hardware.record(),
            "settings": settings.identity(),
            "validation": _validation_summary(history, settings, split.get("val", []) if validation else []),
        }
        (staged_logs / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if same_dir:  # one folder holds everything: the model joins the logs and the folder is replaced once
            save_atomic(record, staged_logs / "model.pt")
            replace_dir(staged_logs, log_dir)
        else:
            with atomic_dir(out_dir) as staged_model:
                save_atomic(record, staged_model / "model.pt")
            replace_dir(staged_logs, log_dir)
        checkpoint_path.unlink(missing_ok=True)  # finished: the model file supersedes it
        return summary


def _validation_inference(settings: TrainSettings, hardware, val_ids: list[str]):
    """The evaluation's window settings for the validation scoring, or None when it is off (``every`` 0) or the split
    has no validation cases."""
    from dcseg.inference import InferenceSettings

    if settings.validation.every == 0 or not val_ids:
        return None
    return InferenceSettings(patch=settings.eval_patch or settings.crop, overlap=settings.validation.overlap,
                             weighting="uniform", precision=hardware.precision, channels_last=hardware.channels_last,
                             subset_batch=len(settings.validation.subsets))


def _check_validation_subsets(settings: TrainSettings, task) -> None:
    """The validation's subsets must be subsets of the data's modalities (e.g. WMH has no T1ce)."""
    if settings.validation.every == 0:
        return
    for name in settings.validation.subsets:
        try:
            subset_by_name(name, task.subsets)
        except KeyError:
            raise ConfigError(f"train {settings.model}: validation subset {name!r} is not one of the {task.name} "
                              f"data's subsets {[s.name for s in task.subsets]}; set train.validation.subsets"
                              ) from None


def _score_isolated(model, preprocessed_dir, cases, settings: TrainSettings, inference, device) -> dict:
    """``score_validation`` in eval mode, with the torch generators saved before and restored after: the training
    continues exactly as if it had not scored."""
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    model.eval()
    try:
        return score_validation(model, preprocessed_dir, cases, settings.validation.subsets, inference, device,
                                task_of(preprocessed_dir))
    finally:
        model.train()
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)


def _validation_summary(history: list[dict], settings: TrainSettings, val_ids: list[str]) -> dict:
    """What train_summary.json records of the validation: its settings, the whole curve, best, last and trend."""
    prefix = "val/dice/"
    curve = [{"step": row["step"], **{k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}}
             for row in history if f"{prefix}{MEAN}" in row]
    return {"every": settings.validation.every, "subsets": list(settings.validation.subsets),
            "overlap": settings.validation.overlap, "patch": settings.eval_patch or settings.crop,
            "cases": len(val_ids), "curve": curve, **curve_summary(curve, settings.steps)}


@contextlib.contextmanager
def _staging(log_dir: Path, is_main: bool):
    """The folder the logs are written to until the run ends (rank 0 only); removed unless it replaced ``log_dir``."""
    staged = staging_dir(log_dir) if is_main else None
    try:
        yield staged
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)


def _why_not_resumed(ckpt: dict, identity: dict) -> str:
    """One line on why a checkpoint does not continue this run."""
    theirs = ckpt.get("resolved")
    if isinstance(theirs, dict) and theirs != identity["resolved"]:
        diffs = [f"{k} {theirs.get(k)} (this run: {v})" for k, v in identity["resolved"].items() if theirs.get(k) != v]
        return f"it was written under {', '.join(diffs)}"
    return "it was written for another model, config or dataset"


def check_ranks_in_sync(model: torch.nn.Module) -> None:
    """Every rank must hold bitwise the same weights after data-parallel training; fail loudly if not."""
    import torch.distributed as dist

    local = torch.stack([p.detach().double().sum() for p in model.parameters()])
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    differing = [r for r, g in enumerate(gathered) if not torch.equal(g, gathered[0])]
    if differing:
        raise RuntimeError(f"distributed training: ranks {differing} hold weights that differ from rank 0's")


def _log(live, row: dict) -> None:
    live.step = row["step"]
    for k, v in row.items():
        if k != "step":
            live.log_metric(k, v, plot=True)
