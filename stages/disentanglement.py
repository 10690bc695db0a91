"""Stage `disentanglement`: the paper's Fig. 3 with numbers -> reports/disentanglement.png (t-SNE of the test cases'
anatomical representations and modality codes) and reports/disentanglement.json (modality identification, case
retrieval, same- vs different-case similarity) for the full DC-Seg run and the Table 2 variants without the
contrastive terms (dcseg/representations.py says how the representations are taken).

usage: python stages/disentanglement.py [key=value ...]   (keys as in params.yaml)
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dcseg.cli import run_stage  # noqa: E402
from dcseg.runs import PREPROCESSED, load_run_params  # noqa: E402

FIGURE = Path("reports/disentanglement.png")
NUMBERS = Path("reports/disentanglement.json")


def main(argv):
    from dcseg.data.brats import MODALITIES
    from dcseg.data.splits import read_split
    from dcseg.evaluation import evaluation_settings, load_trained_model
    from dcseg.io import write_text_atomic
    from dcseg.data.errors import DataError
    from dcseg.representations import FIGURE_VARIANTS, HOW, draw, figure_runs, measure_run
    from dcseg.subsets import MODALITY_LABELS

    cfg = load_run_params(argv)
    runs = figure_runs(cfg, lambda run: (run.model_dir / "model.pt").is_file())
    if not runs:
        raise DataError("no trained DC-Seg model for Fig. 3 (models/dcseg_seedR/model.pt); run the training first")
    settings, _, device, hardware = evaluation_settings(cfg, "dcseg")
    cases = read_split(PREPROCESSED / "split")["test"]
    results, record = {}, {"how": HOW, "patch": settings.patch, "cases": len(cases), "runs": {}}
    for run in runs:
        model, _ = load_trained_model(run.model_dir / "model.pt", run.identity(), PREPROCESSED, settings, device,
                                      f"profiles.{cfg.profile}.models.dcseg.eval_patch")
        result = measure_run(model, PREPROCESSED, cases, settings.patch, cfg.loss.ssim_c1, cfg.loss.ssim_c2, device)
        name = run.variant or "full"
        results[name] = result
        record["runs"][name] = {"run": run.name, **result["numbers"].as_dict()}
        record["input"] = result["input"]  # the same for every run: the windows depend on the data only
        n = result["numbers"]
        identified = "n/a" if n.modality_identification is None else f"{n.modality_identification:.3f}"
        different = "n/a" if n.different_case_similarity is None else f"{n.different_case_similarity:.4f}"
        print(f"disentanglement: {run.name}: modality identification {identified}, case "
              f"retrieval {n.case_retrieval:.3f} (chance {n.chance_retrieval:.3f}; input windows "
              f"{result['input']['case_retrieval']:.3f}), similarity same case {n.same_case_similarity:.4f} vs "
              f"different {different}")
    record["left_out"] = [v for v in FIGURE_VARIANTS if v not in results]
    record["hardware"] = hardware.describe()
    draw(results, tuple(MODALITY_LABELS[m] for m in MODALITIES), FIGURE, seed=int(cfg.report.seed))
    write_text_atomic(NUMBERS, json.dumps(record, indent=2) + "\n")
    print(f"disentanglement: wrote {FIGURE} and {NUMBERS}")


if __name__ == "__main__":
    run_stage("disentanglement", main, torch_threads=True)
