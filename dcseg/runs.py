"""Where each run of the benchmark lives: its stages, folders and files, and every other path the stages share.

The runs themselves are the experiment matrix (``dcseg.experiments``). A main run is a model as published
(``Run("rfnet")``). An ablation run is DC-Seg with one of the paper's Table 2 variants (``Run("dcseg", "no_rec")``):
``dcseg.losses.ABLATIONS`` switches loss terms off and ``dcseg.models.dcseg.ablation_overrides`` leaves out the
modules only those terms train, both derived from the variant's matrix entry. Every run has a seed index
(``Run("rfnet", seed=2)``: the run's seed + 2, params.yaml ``seeds``). The ablation runs train under the
profile's ``ablation`` schedule, which in both profiles adds nothing to the main one: Table 2's variants train like
Table 1's DC-Seg, and its ``full`` row *is* the main DC-Seg runs (every seed), not a run of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcseg.config import ConfigError
from dcseg.experiments import MAIN_MODELS as MODEL_NAMES
from dcseg.experiments import FULL, SEED_LISTS, VARIANT_MODEL, VARIANTS, run_matrix, run_name

ABLATION_VARIANTS = tuple(VARIANTS)  # paper Table 2 row order: full, no_contrastive, no_ana, no_mod, no_rec, no_reg
PREPROCESSED = Path("data/preprocessed")  # the preprocess stage's output, which every later stage reads


@dataclass(frozen=True)
class Run:
    model: str
    variant: str | None = None  # None: the main run; else a Table 2 variant (an ablation run of DC-Seg)
    seed: int = 0               # the seed index: the run trains with its configured seed + this

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown model {self.model!r}; expected one of {MODEL_NAMES}")
        if self.variant is not None and self.variant not in VARIANTS:
            raise ConfigError(f"unknown ablation variant {self.variant!r}; expected one of {ABLATION_VARIANTS}")
        if self.variant is not None and self.model != VARIANT_MODEL:
            raise ConfigError(f"the ablation variants are DC-Seg's; {self.model} has none")
        if self.variant == FULL:
            raise ConfigError(f"Table 2's {FULL!r} row is the main DC-Seg run (python stages/train.py dcseg), not a "
                              "variant of its own")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed index {self.seed!r}: expected an integer >= 0")

    @property
    def is_ablation(self) -> bool:
        return self.variant is not None

    @property
    def name(self) -> str:
        return run_name(self.model, self.variant, self.seed)

    @property
    def group(self) -> str:
        """What this run is a seed of: ``rfnet``, ``dcseg_no_rec`` (a table row's runs share it)."""
        return self.model if self.variant is None else f"{self.model}_{self.variant}"

    @property
    def train_stage(self) -> str:
        """The dvc.yaml stage that trains this run: one matrix per params set it reads (DC-Seg's runs read
        ``loss``, the baselines' do not)."""
        if self.is_ablation:
            return f"train_ablation@{self.variant}-{self.seed}"
        if self.model == VARIANT_MODEL:
            return f"train_dcseg@{self.seed}"
        return f"train@{self.model}-{self.seed}"

    @property
    def evaluate_stage(self) -> str:
        """The dvc.yaml stage that evaluates this run."""
        if self.is_ablation:
            return f"evaluate_ablation@{self.variant}-{self.seed}"
        return f"evaluate@{self.model}-{self.seed}"

    def stage_args(self) -> list[str]:
        """The arguments of this run's train and evaluate commands (``parse_run_args`` reads them back)."""
        return [self.model] + (["--ablation", self.variant] if self.is_ablation else []) + ["--seed", str(self.seed)]

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
        return {"model": self.model, "variant": self.variant, "options": self.model_options(),
                "seed_index": self.seed}


def seed_lists(cfg) -> dict[str, tuple[int, ...]]:
    """params.yaml ``seeds``, checked: ``main`` (at least one index) and ``ablation``, each a list of distinct
    integers >= 0. ``cfg``: the params as an OmegaConf config or a plain dict."""
    from dcseg.config import to_dict

    section = cfg.get("seeds") if isinstance(cfg, dict) else to_dict(cfg).get("seeds")
    if not isinstance(section, dict) or set(section) != set(SEED_LISTS):
        raise ConfigError(f"params key 'seeds' is {section!r}; expected a mapping with exactly the lists "
                          f"{list(SEED_LISTS)} of seed indices")
    lists = {}
    for name in SEED_LISTS:
        value = section[name]
        if (not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                                         for v in value) or len(set(value)) != len(value)):
            raise ConfigError(f"params key 'seeds.{name}' is {value!r}; expected a list of distinct integers >= 0")
        lists[name] = tuple(value)
    if not lists["main"]:
        raise ConfigError("params key 'seeds.main' is empty; every main model needs at least one seed")
    return lists


def matrix_runs(cfg) -> tuple[Run, ...]:
    """Every run of the experiment matrix under params.yaml's ``seeds``, in the pipeline's order."""
    return tuple(Run(model, variant, seed) for model, variant, seed in run_matrix(seed_lists(cfg)))


# Sections of the selected profile that a stage override may name without the ``profiles.<profile>.`` prefix.
PROFILE_SECTIONS = ("train", "models", "evaluate", "ablation")


def run_usage(script: str) -> str:
    """The usage line of a stage that takes a run (train, evaluate): what ``--help`` and a bad argument print."""
    return (f"usage: python stages/{script}.py MODEL [--ablation VARIANT] [--seed R] [key=value ...], or "
            f"model=MODEL [ablation=VARIANT] [seed=R] [key=value ...]  (MODEL: {', '.join(MODEL_NAMES)}; VARIANT, "
            f"DC-Seg only: {', '.join(v for v in ABLATION_VARIANTS if v != FULL)}; R: the seed index, default 0; "
            "keys as in params.yaml)")


def parse_run_args(argv: list[str], script: str) -> tuple[Run, list[str]]:
    """Stage arguments -> (Run, params overrides). Accepted forms (Hydra-like ``key=value`` or positional):

        rfnet profiles.cpu.train.steps=10
        model=rfnet train.steps=10                  (``train.``/``models.``/``evaluate.``/``ablation.`` name the
                                                     selected profile's section; see ``expand_profile_keys``)
        dcseg --ablation no_rec    or    model=dcseg ablation=no_rec
        rfnet --seed 2             or    model=rfnet seed=2      (the seed index: the run's seed + 2)
    """
    usage = run_usage(script)
    rest, model, variant, seed, overrides = list(argv), None, None, "0", []
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
        elif arg == "--seed":
            if not rest:
                raise ConfigError(f"--seed needs a seed index; {usage}")
            seed = rest.pop(0)
        elif arg.startswith(("--seed=", "seed=")):
            seed = arg.split("=", 1)[1]
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        else:
            raise ConfigError(f"unexpected argument {arg!r}; {usage}")
    if model is None:
        raise ConfigError(usage)
    if not seed.isdigit():
        raise ConfigError(f"seed index {seed!r}: expected an integer >= 0; {usage}")
    return Run(model, variant, int(seed)), overrides


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
