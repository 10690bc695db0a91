"""torchrun worker for tests/test_distributed.py: a few training steps of a tiny model, data-parallel.

    torchrun --standalone --nproc_per_node 2 tests/helpers/ddp_train.py PREPROCESSED OUT MODEL
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dcseg.distributed import init_from_environment, shutdown  # noqa: E402
from dcseg.training import train  # noqa: E402
from tests.ddp_settings import ddp_settings  # noqa: E402


def main(preprocessed, out, model):
    ctx = init_from_environment()
    try:
        summary = train(ddp_settings(model), preprocessed, Path(out) / "model", Path(out) / "ckpt.pt", progress=False)
    finally:
        shutdown()
    (Path(out) / f"rank{ctx.rank}.json").write_text(json.dumps({"world_size": ctx.world_size, **{
        k: v for k, v in summary.items() if k in ("rank", "world_size", "steps")}}))


if __name__ == "__main__":
    main(*sys.argv[1:])
