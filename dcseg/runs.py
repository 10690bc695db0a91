"""Where each run of the benchmark lives: its stages, folders and files, and every other path the stages share.

The runs themselves are the experiment matrix (``dcseg.experiments``). A main run is a model as published
(``Run("rfnet")``). An ablation run is DC-Seg with one of the paper's Table 2 variants (``Run("dcseg", "no_rec")``):
``dcseg.losses.ABLATIONS`` switches loss terms off and ``dcseg.models.dcseg.ablation_overrides`` leaves out the
modules only those terms train, both derived from the variant's matrix entry. The ablation runs train
under the profile's ``ablation`` schedule (the CPU profile: fewer steps than the main runs, to fit the budget), so
Table 2 has its own ``full`` row trained under that same schedule: its rows compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcseg.config import ConfigError
from dcseg.experiments import MAIN_MODELS as MODEL_NAMES
from dcseg.experiments import RUNS, VARIANT_MODEL, VARIANTS, run_name

ABLATION_VARIANTS = tuple(VARIANTS)  # paper Table 2 row order: full, no_contrastive, no_ana, no_mod, no_rec, no_reg
PREPROCESSED = Path("data/preprocessed")  # the preprocess stage's output, which every later stage reads


@dataclass(frozen=True)
class Run:
    model: str
    variant: str | None = None  # None: the main run; else a Table 2 variant (an ablation run of DC-Seg)

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown model {self.model!r}; expected one of {MODEL_NAMES}")
        if self.variant is not None and self.variant not in VARIANTS:
            raise ConfigError(f"unknown ablation variant {self.variant!r}; expected one of {ABLATION_VARIANTS}")
        if self.variant is not None and self.model != VARIANT_MODEL:
            raise ConfigError(f"the ablation variants are DC-Seg's; {self.model} has none")

    @property
    def is_ablation(self) -> bool:
        return self.variant is not None

    @property
    def name(self) -> str:
        return run_name(self.model, self.variant)

    @property
    def train_stage(self) -> str:
        """The dvc.yaml stage that trains this run."""
        return f"train@{self.name}"

    @property
    def evaluate_stage(self) -> str:
        """The dvc.yaml stage that evaluates this run."""
        return f"evaluate@{self.name}"

    @property
    def model_dir(self) -> Path:
        return Path("models") / self.name

    @property
    def log_dir(self) -> Path:
        """train_summary.json and the dvclive logs: small, git-tracked (``cache: false``), readable from a clone."""
        return Path("logs") / self.name

    @property
    def train_summary(self) -> Path:
        return self.log_dir / "train_summary.json"

    @property
    def checkpoint(self) -> Path:
        # outside DVC's outputs: DVC deletes a stage's outputs before it reruns the stage
        return Path("checkpoints") / self.name / "last.pt"

    @property
    def metrics_json(self) -> Path:
        return Path("metrics") / f"{self.name}.json"

    @property
    def cases_csv(self) -> Path:
        return Path("metrics") / f"{self.name}_cases.csv"

    def model_options(self) -> dict:
        """The model config options this run sets (an ablation variant leaves out modules); {} for a main run."""
        if self.variant is None:
            return {}
        from dcseg.models.dcseg import ablation_overrides
        return ablation_overrides(self.variant)

    def train_options(self) -> dict:
        """``train_settings`` options of this run: model ``overrides``, loss ``terms`` (None: the model's
        defaults) and whether the profile's ablation schedule applies."""
        if self.variant is None:
            return {"overrides": None, "terms": None, "ablation": False}
        import dataclasses

        from dcseg.losses import ABLATIONS
        return {"overrides": self.model_options(), "terms": dataclasses.asdict(ABLATIONS[self.variant]),
                "ablation": True}

    def identity(self) -> dict:
        """What a model file of this run must record (dcseg.checkpoint.MODEL_FIELDS): known from the run alone, so
        the evaluate stage checks it without reading training params."""
        return {"model": self.model, "variant": self.variant, "options": self.model_options()}


ALL_RUNS: tuple[Run, ...] = tuple(Run(model, variant) for model, variant in RUNS)  # the matrix, in pipeline order
MAIN_RUNS: tuple[Run, ...] = tuple(run for run in ALL_RUNS if not run.is_ablation)
ABLATION_RUNS: tuple[Run, ...] = tuple(run for run in ALL_RUNS if run.is_ablation)


# Sections of the selected profile that a stage override may name without the ``profiles.<profile>.`` prefix.
PROFILE_SECTIONS = ("train", "models", "evaluate", "ablation")


def run_usage(script: str) -> str:
    """The usage line of a stage that takes a run (train, evaluate): what ``--help`` and a bad argument print."""
    return (f"usage: python stages/{script}.py MODEL [--ablation VARIANT] [key=value ...], or model=MODEL "
            f"[ablation=VARIANT] [key=value ...]  (MODEL: {', '.join(MODEL_NAMES)}; VARIANT, DC-Seg only: "
            f"{', '.join(ABLATION_VARIANTS)}; keys as in params.yaml)")


def parse_run_args(argv: list[str], script: str) -> tuple[Run, list[str]]:
    """Stage arguments -> (Run, params overrides). Accepted forms (Hydra-like ``key=value`` or positional):

        rfnet profiles.cpu.train.steps=10
        model=rfnet train.steps=10                  (``train.``/``models.``/``evaluate.``/``ablation.`` name the
                                                     selected profile's section; see ``expand_profile_keys``)
        dcseg --ablation no_rec    or    model=dcseg ablation=no_rec
    """
    usage = run_usage(script)
    rest, model, variant, overrides = list(argv), None, None, []
    if rest and "=" not in rest[0] and not rest[0].startswith("-"):
        model = rest.pop(0)
    while rest:
        arg = rest.pop(0)
        if arg == "--ablation":
            if not rest:
                raise ConfigError(f"--ablation needs a variant name; {usage}")
            variant = rest.pop(0)
        elif arg.startswith("--ablation="):
            variant = arg.split("=", 1)[1]
        elif arg.startswith("model=") and model is None:
            model = arg.split("=", 1)[1]
        elif arg.startswith("ablation="):
            variant = arg.split("=", 1)[1]
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        else:
            raise ConfigError(f"unexpected argument {arg!r}; {usage}")
    if model is None:
        raise ConfigError(usage)
    return Run(model, variant), overrides


def expand_profile_keys(overrides: list[str], profile: str) -> list[str]:
    """Rewrite ``train.steps=10`` as ``profiles.<profile>.train.steps=10`` (likewise ``models.``, ``evaluate.``,
    ``ablation.``). Other keys pass unchanged, so a typo still fails loudly, with its full name."""
    return [f"profiles.{profile}.{o}" if o.split("=", 1)[0].split(".", 1)[0] in PROFILE_SECTIONS else o
            for o in overrides]


def command_line_keys(overrides: list[str], profile: str) -> tuple[str, ...]:
    """The full params keys a stage's ``key=value`` arguments set (shorthands expanded): the top layer of
    ``dcseg.training.layered_settings``."""
    return tuple(o.split("=", 1)[0] for o in expand_profile_keys(overrides, profile))


def load_run_params(overrides: list[str], params_path=None):
    """params.yaml with a stage's overrides applied. A ``profile=`` override applies first, so the shorthand keys
    of ``expand_profile_keys`` name the profile the stage will actually use."""
    from dcseg.config import apply_overrides, load_params

    cfg = load_params(path=params_path)
    profile_overrides = [o for o in overrides if o.split("=", 1)[0] == "profile"]
    apply_overrides(cfg, profile_overrides, params_path or "params.yaml")
    others = [o for o in overrides if o not in profile_overrides]
    apply_overrides(cfg, expand_profile_keys(others, cfg.profile), params_path or "params.yaml")
    return cfg
