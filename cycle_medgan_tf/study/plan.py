"""The fidelity study's plan as data: which runs each stage trains, on which store, and the rule that chooses
Cycle-MedGAN's loss weights (docs/FIDELITY.md states the same protocol in prose).

A :class:`Run` is one training (task, stage, store role, data variant, model, loss-weight settings, seed, step
budget, profile) with a stable, readable id such as ``pet_ct/ablation/cycle_medgan_cp0.6_cs0/seed_0_600``: the
committed JSON of its metrics is ``RESULTS/ID.json`` and its run directory ``WORKDIR/ID/``.

Stores: ``test`` is the default data (generator seed 0, what the final comparison reports on); ``tuning`` is the
same generator with seed ``TUNING_SEED`` (other subjects). The window and ablation stages train and evaluate on the
tuning store only (:data:`STAGE_STORE`; a run of those stages on another store cannot be built), so nothing is
ever chosen on the test store. Learning curves are scored on a third store of other subjects again
(:data:`CURVE_SEEDS`): seed 2 for the tuning-store runs, the tuning store for the test-store runs (as the main job).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.training.jobs import TUNING_SEED
from cycle_medgan_tf.config import PAPER_EPOCH_SLICES, resolve_config

TASKS = ("pet_ct", "mr_motion")
STAGES = ("window", "ablation", "final")
TUNING_STAGES = ("window", "ablation")            # stages that choose something: tuning store only
STAGE_STORE = {"window": "tuning", "ablation": "tuning", "final": "test"}
STORE_SEEDS = {"test": 0, "tuning": TUNING_SEED}  # generator seed of each store role
CURVE_SEEDS = {"test": TUNING_SEED, "tuning": 2}  # generator seed of the learning-curve store of each role
# Data variants: domain B's intensity mapping (make_default --transfer_b); "linear" is the default data.
DATA_VARIANTS = {"linear": "", "soft_tissue": "-200:-0.6,300:0.6"}
WINDOW_TASKS = ("pet_ct",)                        # the CT window question exists only where B is CT
# Tasks whose input is itself a guess of the target (motion correction: doing nothing), so every configuration is
# also compared with Identity, the input copied: a model below it has made the images worse.
COPY_BASELINE_TASKS = ("mr_motion",)
STUDY_SEEDS = (0, 1, 2)                           # default training seeds of every stage
LONG_FACTOR = 4                                   # the final stage's longer budget: this many times the profile's
LONG_MODELS = ("cyclegan", "cycle_medgan")        # trained at the longer budget
# Every run of the study trains in float32, on every machine: ``--precision=auto`` takes bfloat16 where it is
# measured faster (e.g. CPUs with AVX512-BF16), and a study spans sittings on different machines, so auto would mix
# precisions between configurations and confound their comparison.
STUDY_PRECISION = "float32"
GRADIENT_POINTS = 8         # final stage, CycleGAN and Cycle-MedGAN: per-term gradient norms this many times a run
FINAL_MODELS = ("unit", "cyclegan", "cycle_medgan")
# The ablation's grid is centred on the Cycle-MedGAN defaults of the day the protocol was written
# (docs/LOSS_WEIGHTS.md), pinned here so that adopting the ablation's choice as the new defaults leaves the
# committed ablation complete; each weight is the centre times WEIGHT_FACTORS (a 9x span).
PROTOCOL_WEIGHTS = {"lambda_cp": 1.8, "lambda_cs": 1.0}
WEIGHT_FACTORS = (1 / 3, 1.0, 3.0)
FEATURE_WEIGHTS = ("lambda_cp", "lambda_cs")

CHOICE_RULE = (
    "Among the ablation configurations with the cycle feature losses, choose the one with the best mean rank "
    "across seeds-averaged brain SSIM, brain PSNR, bone SSIM, bone Dice and whole-image SSIM on the tuning store; "
    "ties broken by brain SSIM. If no configuration beats CycleGAN's mean rank, keep the current defaults and say "
    "that the losses did not help on the tuning store.")
CHOICE_RULE_MR = (
    "For mr_motion, whose target is MR, the masked metrics are head SSIM and head PSNR: the mean rank is taken "
    "across seeds-averaged head SSIM, head PSNR and whole-image SSIM, ties broken by head SSIM.")
# The rule's metrics per task (keys of evaluation/tissue.py and evaluation/metrics.py; all higher-is-better),
# the first one breaking ties.
RULE_METRICS = {"pet_ct": ("ssim_brain", "psnr_brain", "ssim_bone", "dice_bone", "ssim"),
                "mr_motion": ("ssim_mask", "psnr_mask", "ssim")}


class PlanError(ValueError):
    """A run or plan that the protocol does not allow; the message is one line for the user."""


def _number(value: float) -> str:
    """A weight as it appears in a label: 2 significant digits, no trailing zeros (0.6, 1.8, 5.4, 0.33, 1, 3)."""
    return f"{float(f'{value:.2g}'):g}"


@dataclass(frozen=True)
class Run:
    """One training of the study; ``settings`` holds its loss-weight overrides as sorted (name, value) pairs."""

    task: str
    stage: str
    store: str
    data: str
    model: str
    seed: int
    steps: int
    profile: str
    settings: tuple = field(default_factory=tuple)

    def __post_init__(self):
        problems = [
            (self.task not in TASKS, f"task {self.task!r} (expected one of {', '.join(TASKS)})"),
            (self.stage not in STAGES, f"stage {self.stage!r} (expected one of {', '.join(STAGES)})"),
            (self.stage in STAGES and self.store != STAGE_STORE[self.stage],
             f"store {self.store!r} for the {self.stage} stage (it uses the {STAGE_STORE.get(self.stage)} store "
             "only: nothing is chosen on the test store)"),
            (self.data not in DATA_VARIANTS, f"data variant {self.data!r}"),
            (self.data != "linear" and self.task not in WINDOW_TASKS, f"data variant {self.data!r} for {self.task}"),
            (self.model not in catalogue.translator_names(), f"model {self.model!r}"),
            (self.seed < 0 or self.steps < 1, f"seed {self.seed} / steps {self.steps}"),
            (any(name not in FEATURE_WEIGHTS for name, _ in self.settings), f"settings {self.settings!r}"),
        ]
        bad = [text for wrong, text in problems if wrong]
        if bad:
            raise PlanError(f"not a run of the study: {bad[0]}")

    @property
    def label(self) -> str:
        """The configuration's name: model, loss weights, data variant (when not the default)."""
        weights = "".join(f"_{name[len('lambda_'):]}{_number(v)}" for name, v in self.settings)
        return self.model + weights + ("" if self.data == "linear" else f"_{self.data}")

    @property
    def run_id(self) -> str:
        return f"{self.task}/{self.stage}/{self.label}/seed_{self.seed}_{self.steps}"

    def overrides(self) -> dict:
        """The configuration overrides of this run (besides data, workdir and curve store), float32 always
        (:data:`STUDY_PRECISION`); the final stage's
        CycleGAN and Cycle-MedGAN runs also log the generator-gradient norm of each loss term (how much the
        cycle feature losses steer training: docs/FIDELITY.md), which leaves training unchanged."""
        measured = (dict(gradient_every=max(self.steps // GRADIENT_POINTS, 1))
                    if self.stage == "final" and self.model in LONG_MODELS else {})
        return dict(self.settings, seed=self.seed, steps=self.steps, precision=STUDY_PRECISION, **measured)

    def record(self) -> dict:
        """The run as it is written into (and compared with) its JSON."""
        return {"id": self.run_id, "task": self.task, "stage": self.stage, "store": self.store, "data": self.data,
                "model": self.model, "settings": dict(self.settings), "seed": self.seed, "steps": self.steps,
                "profile": self.profile}


def default_weights() -> dict:
    """Cycle-MedGAN's current default loss weights (catalogue.py)."""
    defaults = catalogue.family("cycle_medgan").defaults
    return {name: float(defaults[name]) for name in FEATURE_WEIGHTS}


def profile_steps(task: str, profile: str) -> int:
    """The profile's step budget (the paper profile counts epochs of the paper's cohort)."""
    cfg = resolve_config("cyclegan", profile)
    if cfg.steps > 0:
        return int(cfg.steps)
    if cfg.epoch_basis != "paper":
        raise PlanError(f"profile {profile} counts epochs of the store; give --steps")
    return int(math.ceil(cfg.epochs * max(PAPER_EPOCH_SLICES[task] // cfg.batch_size, 1)))


def _weights(cp: float, cs: float) -> tuple:
    return (("lambda_cp", float(_number(cp))), ("lambda_cs", float(_number(cs))))


def ablation_configs() -> list[tuple[str, tuple]]:
    """(model, settings) of the ablation: CycleGAN; cycle-perceptual only and cycle-style only, each at the
    protocol's weight times :data:`WEIGHT_FACTORS`; both at the protocol's weights (Cycle-MedGAN's defaults)."""
    d = PROTOCOL_WEIGHTS
    return ([("cyclegan", ())]
            + [("cycle_medgan", _weights(d["lambda_cp"] * f, 0.0)) for f in WEIGHT_FACTORS]
            + [("cycle_medgan", _weights(0.0, d["lambda_cs"] * f)) for f in WEIGHT_FACTORS]
            + [("cycle_medgan", _weights(d["lambda_cp"], d["lambda_cs"]))])


def stage_runs(task: str, stage: str, seeds, steps: int, profile: str, long_steps: int | None = None,
               weights: dict | None = None) -> list[Run]:
    """The runs of one stage in training order (seed-major, so a partial stage has every configuration's first
    seeds). ``weights`` are Cycle-MedGAN's in the final stage (default: the current defaults). The window stage's
    linear-window CycleGAN runs are the ablation's CycleGAN runs (same store, settings and budget)."""
    def make(model, settings, data="linear", n_steps=steps):
        return [Run(task, stage, STAGE_STORE[stage], data, model, seed, n_steps, profile, settings)
                for seed in seeds]

    if stage == "window":       # its linear-window CycleGAN is the ablation's (the same training: not repeated)
        baseline = [Run(task, "ablation", STAGE_STORE["ablation"], "linear", "cyclegan", seed, steps, profile)
                    for seed in seeds]
        groups = ([baseline] + [make("cyclegan", (), data) for data in DATA_VARIANTS if data != "linear"]
                  if task in WINDOW_TASKS else [])
    elif stage == "ablation":
        groups = [make(model, settings) for model, settings in ablation_configs()]
    elif stage == "final":
        w = weights or default_weights()
        chosen = {"cycle_medgan": _weights(w["lambda_cp"], w["lambda_cs"])}
        groups = [make(m, chosen.get(m, ())) for m in FINAL_MODELS]
        if long_steps and long_steps != steps:
            groups += [make(m, chosen.get(m, ()), n_steps=long_steps) for m in LONG_MODELS]
    else:
        raise PlanError(f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})")
    return [run for seed_index in range(len(seeds)) for group in groups for run in group[seed_index:seed_index + 1]]


def check_unique(runs) -> None:
    """Refuse a stage in which two runs share an id."""
    ids = [run.run_id for run in runs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise PlanError(f"the plan has run {repeated[0]} twice")
