"""Stage `train@MODEL`: train one model under the shared protocol.

    python stages/train.py MODEL [--ablation VARIANT] [--seed R] [key=value ...]
    e.g.  python stages/train.py rfnet profiles.cpu.train.steps=10
          python stages/train.py model=rfnet train.steps=10      (train./models./evaluate./ablation. = the profile's)
          python stages/train.py dcseg --ablation no_rec          (an ablation of the paper's Table 2)
          python stages/train.py rfnet --seed 2                   (seed index 2: the configured seed + 2)
          torchrun --nproc_per_node 4 stages/train.py dcseg      (data-parallel: 4 GPUs, or 4 CPU processes)

Writes models/RUN/model.pt (DVC-cached) and logs/RUN/{train_summary.json, live/} (git-tracked; RUN: MODEL_seedR,
or dcseg_VARIANT_seedR for an ablation run), each folder replaced whole at the end;
resumable checkpoints go to checkpoints/RUN/last.pt (outside DVC's outputs, which DVC deletes before rerunning).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.runs import PREPROCESSED, command_line_keys, load_run_params, parse_run_args, run_usage  # noqa: E402



def main(argv):
    run, overrides = parse_run_args(argv, "train")
    cfg = load_run_params(overrides)
    from dcseg.distributed import init_from_environment, shutdown
    from dcseg.training import train_settings, train

    settings = train_settings(cfg, run.model, variant=run.variant,
                                    command_line=command_line_keys(overrides, cfg.profile), seed_index=run.seed,
                              **run.train_options())
    ctx = init_from_environment(settings.device)  # under torchrun: join the process group (gloo on CPU, NCCL on GPU)
    try:
        summary = train(settings, PREPROCESSED, run.model_dir, run.checkpoint, log_dir=run.log_dir)
    finally:
        shutdown()
    if not ctx.is_main:
        return
    last = summary["validation"]["last"]
    print(f"train {run.name}: {summary['steps']} steps, {summary['seconds_per_step']} s/step, "
          f"peak RSS {summary['peak_rss_mib']} MiB, final epoch loss {summary['final_epoch_loss']}, "
          f"validation Dice {last['mean'] if last else 'not scored'} ({summary['validation']['trend']})")


if __name__ == "__main__":
    run_stage("train", main, torch_threads=True, usage=run_usage("train"))
