"""Stage `evaluate`: models/RUN/model.pt on the test split, 15 modality subsets
-> metrics/RUN_cases.csv (per case, subset, region) and metrics/RUN.json (Table 1 means).

usage: python stages/evaluate.py MODEL [--ablation VARIANT] [--seed R] [key=value ...]
       (MODEL: dcseg | rfnet | mmformer; VARIANT: a DC-Seg ablation run; R: the seed index; the model is read from
       models/RUN (dcseg.runs: RUN is MODEL_seedR or dcseg_VARIANT_seedR); keys as in params.yaml)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.runs import PREPROCESSED, load_run_params, parse_run_args, run_usage  # noqa: E402
from dcseg.data.splits import read_split  # noqa: E402
from dcseg.tasks import task_of  # noqa: E402
from dcseg.evaluation import format_summary, load_trained_model, run_evaluation, evaluation_settings  # noqa: E402



def main(argv):
    run, overrides = parse_run_args(argv, "evaluate")
    cfg = load_run_params(overrides)
    settings, et_min_volume, device, hardware = evaluation_settings(cfg, run.model)

    model_path = run.model_dir / "model.pt"
    model, meta = load_trained_model(model_path, run.identity(), PREPROCESSED, settings, device,
                                     f"profiles.{cfg.profile}.models.{run.model}.eval_patch")

    cases = read_split(PREPROCESSED / "split")["test"]
    subsets = len(task_of(PREPROCESSED).subsets)
    print(f"evaluate: {run.name} ({model_path}, width {meta['width']}) on {len(cases)} test cases x {subsets} subsets, "
          f"patch {settings.patch}, overlap {settings.overlap}, {settings.weighting}, {hardware.describe()}")
    summary = run_evaluation(model, PREPROCESSED, cases, settings, et_min_volume,
                             run.cases_csv, run.metrics_json, device, hardware=hardware)
    print(format_summary(summary))
    print(f"evaluate: {run.name}: {summary['n_cases']} cases x {subsets} subsets in {summary['seconds']} s")


if __name__ == "__main__":
    run_stage("evaluate", main, torch_threads=True, usage=run_usage("evaluate"))
