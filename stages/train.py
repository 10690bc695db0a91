"""Stage `train@MODEL`: train one model under the shared protocol.

    python stages/train.py MODEL [key=value ...]      e.g.  python stages/train.py rfnet profiles.cpu.train.steps=10

Writes models/MODEL/{model.pt, train_summary.json, live/}; resumable checkpoints go to checkpoints/MODEL/last.pt
(outside DVC's outputs, which DVC deletes before rerunning a stage).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.config import ConfigError, load_params  # noqa: E402

PREPROCESSED = Path("data/preprocessed")


def main(argv):
    if not argv or "=" in argv[0]:
        raise ConfigError("usage: python stages/train.py MODEL [key=value ...] (MODEL: dcseg, rfnet or mmformer)")
    model, overrides = argv[0], argv[1:]
    cfg = load_params(overrides)
    from dcseg.training import settings_from_params, train

    settings = settings_from_params(cfg, model)
    summary = train(settings, PREPROCESSED, Path("models") / model, Path("checkpoints") / model / "last.pt")
    print(f"train {model}: {summary['steps']} steps, {summary['seconds_per_step']} s/step, "
          f"peak RSS {summary['peak_rss_mib']} MiB, final epoch loss {summary['final_epoch_loss']}")


if __name__ == "__main__":
    run_stage("train", main)
