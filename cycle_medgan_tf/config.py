"""Every training setting in one place: the common fields, the three profiles, and their resolution; the
per-family defaults, profile overrides and settings blocks are the family records of ``catalogue.py``.

Precedence (lowest first): ``COMMON`` < the family's ``defaults`` < ``PROFILES[profile]`` < the family's
``profiles[profile]`` < explicit command-line flags. The resolved :class:`TrainConfig` is frozen (derive another
with ``dataclasses.replace``) and written to ``config.json``, its settings block flat beside the other fields (the
keys are the flag names); :func:`current_layout` reads a config.json of any earlier layout.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from cycle_medgan_tf import catalogue

MODELS = catalogue.translator_names()          # the translators, in Table I order
LR_SCHEDULES = ("linear_decay", "constant")    # linear_decay: constant until decay_start, then linearly to ~0
PROFILE_NAMES = ("smoke", "quick", "paper")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")   # Keras dtype policies
PRECISION_CHOICES = ("auto",) + PRECISIONS      # auto: measured at the start of a run (training/precision.py)
BF16_MIN_SPEEDUP = 1.2          # auto takes mixed_bfloat16 only when its probe convolution is this much faster
STRATEGIES = ("default", "mirrored", "multi_worker")    # see cycle_medgan_tf/training/distribute.py
EPOCH_BASES = ("store", "paper")
# Training slices per domain in the paper's cohorts (Armanious et al. 2019): an epoch of the `paper` profile,
# whatever store it is given, so its step count is the paper's (50 epochs of 30 and 15 batches of 64: 1,500 and 750
# steps).
PAPER_EPOCH_SLICES = {"pet_ct": 1935, "mr_motion": 980}
CURVE_POINTS = 8                  # learning-curve points per run when curve_every is 0 (the last step is one)


@dataclass(frozen=True)
class TrainConfig:
    """All settings of one training run (see README for the meaning of each); ``settings`` is the model family's
    own block (``catalogue.py``; by default the family's defaults)."""

    model: str = "cycle_medgan"
    data: str = ""
    workdir: str = ""
    profile: str = "quick"
    image_size: int = 64
    channels: int = 1
    batch_size: int = 1
    steps: int = 0                    # total optimisation steps; 0 = derive from epochs
    epochs: float = 0.0               # epochs (used when steps == 0); an epoch's size is set by epoch_basis
    epoch_basis: str = "store"        # "store": min(train A, train B) of the store; "paper": the paper's cohort
    seed: int = 0
    # optimisation
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_schedule: str = "linear_decay"  # one of LR_SCHEDULES
    decay_start: float = 0.5          # linear_decay: fraction of the steps after which the lr decays to ~0
    settings: object = None           # the family's settings block (catalogue.py)
    # bookkeeping
    log_every: int = 50
    image_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    precision: str = "auto"           # resolved before training; config.json holds the resolved policy
    precision_probe: dict = field(default_factory=dict)   # record of the auto choice (timings, ratio, rule)
    jit: bool = False
    skip_nonfinite: bool = False      # skip (undo) a step with a NaN/Inf loss instead of stopping the run
    # learning curves (cycle_medgan_tf/training/curves.py)
    curve_data: str = ""              # tuning store of other subjects evaluated during training; "" = off
    curve_every: int = 0              # steps between curve points (and the last step); 0 = CURVE_POINTS per run
    curve_slices: int = 16            # fixed subset of the tuning store's paired validation rows
    gradient_every: int = 0           # steps between per-term gradient norms (hooks.GradientNorms); 0 = off
    # distribution (run control: may change between a run and its resume; see docs/DISTRIBUTED.md)
    strategy: str = "default"         # default (one device), mirrored (all GPUs or logical CPUs), multi_worker
    cpu_devices: int = 0              # mirrored without GPUs: split the CPU into this many logical devices

    def __post_init__(self):
        family = catalogue.family(self.model)
        if self.settings is None:     # frozen: the one assignment, before anyone sees the object
            object.__setattr__(self, "settings", family.default_settings())
        elif type(self.settings) is not family.settings:
            raise ValueError(f"{self.model} takes {family.settings.__name__}, not {type(self.settings).__name__}")

    def to_dict(self) -> dict:
        """The flat record of ``config.json``: every field, the settings block's fields beside the others."""
        out = dataclasses.asdict(self)
        out.update(out.pop("settings"))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_flat(cls, values: dict) -> "TrainConfig":
        """A config from flat ``values`` (field and setting names, as flags and ``config.json`` have them);
        ``ValueError`` for a name that is no setting, or a setting of another family."""
        family = catalogue.family(values.get("model", cls.model))
        top = {k: v for k, v in values.items() if k in cls.field_names()}
        own = {k: v for k, v in values.items() if k in family.setting_names()}
        rest = sorted(set(values) - set(top) - set(own))
        foreign = [k for k in rest if catalogue.families_with(k)]
        if foreign:
            raise ValueError(f"{', '.join(foreign)}: not a setting of {family.name} (only of "
                             f"{', '.join(catalogue.families_with(foreign[0]))})")
        if rest:
            raise ValueError(f"unknown settings {rest}")
        return cls(**top, settings=dataclasses.replace(family.default_settings(), **own))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "settings"]


# settings added after runs had been written, with the value that means "as before": a record without one is read
# as having this value
ADDED_SETTINGS = {"lambda_identity": 0.0, "disc_layers": 3, "lambda_structure": 0.0, "upsample": "transpose",
                  "disc_window_a": "", "disc_window_b": ""}
ADDED_FIELDS = {"gradient_every": 0}         # the same for TrainConfig's own fields


def current_layout(record: dict) -> dict:
    """A ``config.json`` record in today's layout. Earlier runs wrote every family's settings (those of other
    families unused), no ``lr_schedule`` (the lr decayed linearly from ``decay_start``, 1 meaning never) and none
    of :data:`ADDED_SETTINGS` or :data:`ADDED_FIELDS`: their records are read as the same run today's layout
    describes, so that they resume."""
    if not isinstance(record, dict) or record.get("model") not in catalogue.names():
        return record
    family = catalogue.family(record["model"])
    others = set(catalogue.all_setting_names()) - set(family.setting_names())
    out = {k: v for k, v in record.items() if k not in others}
    out.update({k: v for k, v in ADDED_SETTINGS.items() if k in family.setting_names() and k not in out})
    out.update({k: v for k, v in ADDED_FIELDS.items() if k not in out})
    if "lr_schedule" not in out:
        decays = out.get("decay_start", 1.0) < 1
        out["lr_schedule"] = "linear_decay" if decays else family.defaults.get("lr_schedule", "linear_decay")
    return out


# --help text of the settings whose meaning the flag name does not tell
FLAG_HELP: dict[str, str] = {
    "strategy": "tf.distribute strategy: default (one device), mirrored (all GPUs, else all logical CPU devices) "
                "or multi_worker (MultiWorkerMirroredStrategy, cluster from TF_CONFIG). --batch_size is the global "
                "batch. May change between a run and its resume.",
    "cpu_devices": "With --strategy=mirrored and no GPU: split the CPU into this many logical devices (replicas).",
    "precision": "Keras dtype policy: auto (time a convolution forward+backward in float32 and bfloat16 at the start "
                 f"and take mixed_bfloat16 only if >= {BF16_MIN_SPEEDUP}x faster; float32 with a GPU; recorded in "
                 "config.json as precision_probe, kept on resume), float32, mixed_bfloat16 or mixed_float16.",
    "curve_data": "Learning curves: a tuning store (same generator, other subjects; never the --data store) whose "
                  "paired validation subset is translated every --curve_every steps; SSIM/PSNR go to metrics.jsonl "
                  "and TensorBoard. Empty = off.",
    "curve_every": f"Steps between learning-curve points (the last step is always one); 0 = {CURVE_POINTS} points "
                   "per run.",
    "lr_schedule": "Learning-rate schedule: linear_decay (constant until --decay_start, then linearly to ~0) or "
                   "constant (default from the model: UNIT and BiGAN constant).",
    "lambda_identity": "CycleGAN / Cycle-MedGAN: weight of the identity-mapping loss |G(b) - b| + |F(a) - a| (Zhu "
                       "et al. 2017; junyanz's code uses 0.5 x lambda_cycle). Not in the faithful recipe: default 0.",
    "lambda_structure": "CycleGAN / Cycle-MedGAN: weight of the structure-consistency loss |MIND(G(a)) - MIND(a)| + "
                        "|MIND(F(b)) - MIND(b)| (MIND: Heinrich et al. 2012; as in Yang et al. 2018's structure-"
                        "constrained CycleGAN): each translation keeps its input's local structure, whatever its "
                        "contrast. Not in the faithful recipe: default 0.",
    "disc_layers": "CycleGAN / Cycle-MedGAN: stride-2 stages of both PatchGAN discriminators; their receptive "
                   "field is 16, 34 or 70 pixels for 1, 2 or 3 (Isola et al. 2017). The faithful recipe: 3 (70x70).",
    "upsample": "CycleGAN / Cycle-MedGAN: the generators' two up-sampling stages: transpose (3x3 stride-2 transposed "
                "convolutions, the faithful recipe), nearest or bilinear (resize-convolutions: that x2 up-sampling, "
                "then a 3x3 convolution; same parameter count, no uneven overlap: Odena et al. 2016).",
    "disc_window_a": "CycleGAN / Cycle-MedGAN: LO:HI in domain A's physical units: discriminator A also sees its "
                     "images softly re-windowed to that band (a second input channel, tanh of the band's linear "
                     "map). Not in the faithful recipe: default empty (off).",
    "disc_window_b": "CycleGAN / Cycle-MedGAN: LO:HI in domain B's physical units, e.g. 0:80 (HU, the brain "
                     "window): discriminator B also sees its images softly re-windowed to that band, so it can "
                     "judge contrast a wide CT window hides. Not in the faithful recipe: default empty (off).",
    "gradient_every": "CycleGAN / Cycle-MedGAN: every N steps (and the last), the norm of the generators' gradient "
                      "of each weighted loss term (adversarial, cycle, identity, structure, cycle-perceptual, "
                      "cycle-style) and of their sum on the step's batch, to metrics.jsonl (kind 'gradients') and "
                      "TensorBoard; training is unchanged. 0 = off.",
    "curve_slices": "Learning curves: size of the fixed subset of the tuning store's validation rows (spread over "
                    "its subjects).",
}

COMMON: dict = {}

MODEL_DEFAULTS: dict[str, dict] = {f.name: dict(f.defaults) for f in catalogue.FAMILIES}

PROFILES: dict[str, dict] = {
    # Tests: tiny and fast, but every code path.
    "smoke": dict(image_size=64, batch_size=1, steps=4, log_every=1, image_every=2, checkpoint_every=2,
                  keep_checkpoints=2, precision="float32", curve_every=2),   # float32: same numbers on every machine
    # CPU demo: 64x64, a step budget sized so the three-model job takes about 30 minutes on 2 cores
    # (measured at 64x64: UNIT about 1.2 s/step, CycleGAN and Cycle-MedGAN less).
    "quick": dict(image_size=64, batch_size=1, steps=600, log_every=25, image_every=150, checkpoint_every=100),
    # The paper: 256x256, batch 64, 50 epochs of the paper's cohort (GPU).
    "paper": dict(image_size=256, batch_size=64, epochs=50.0, steps=0, epoch_basis="paper", log_every=10,
                  image_every=100, checkpoint_every=200),
}
# Training seeds of the main job per profile (every model is trained once per seed; Table I reports the mean
# over seeds with the spread across seeds). quick: one seed is what its time budget holds on 2 cores (the three
# models take about 45 minutes per seed on a 2-core AMD EPYC without AVX-512); give --seeds=0,1,2 for spreads.
DEFAULT_SEEDS: dict[str, tuple[int, ...]] = {"smoke": (0,), "quick": (0,), "paper": (0, 1, 2)}


def resolve_config(model: str, profile: str, overrides: dict | None = None) -> TrainConfig:
    """Build the effective configuration for ``model`` under ``profile`` with explicit ``overrides`` (flat: field
    and setting names)."""
    family = catalogue.family(model)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {list(PROFILE_NAMES)}")
    values: dict = {}
    for layer in (COMMON, family.defaults, PROFILES[profile], family.profiles.get(profile, {}), overrides or {}):
        values.update(layer)
    cfg = TrainConfig.from_flat(dict(values, model=model, profile=profile))
    check_config(cfg)
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError with a clear message for any out-of-range setting (the settings block's last)."""
    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ValueError(message)

    need(cfg.image_size >= 16 and cfg.image_size % 4 == 0,
         f"image_size must be a multiple of 4 and >= 16, got {cfg.image_size}")
    need(cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}")
    need(cfg.steps >= 0 and cfg.epochs >= 0 and (cfg.steps > 0 or cfg.epochs > 0), "give --steps > 0 or --epochs > 0")
    need(cfg.lr > 0, f"lr must be > 0, got {cfg.lr}")
    need(0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
    need(cfg.lr_schedule in LR_SCHEDULES,
         f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {cfg.lr_schedule}")
    need(0 < cfg.decay_start <= 1, f"decay_start must be in (0, 1], got {cfg.decay_start}")
    need(cfg.lr_schedule == "linear_decay" or cfg.decay_start == 1,
         f"decay_start={cfg.decay_start} needs --lr_schedule=linear_decay ({cfg.model}: {cfg.lr_schedule})")
    for name in ("log_every", "image_every", "checkpoint_every", "keep_checkpoints"):
        need(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
    need(cfg.epoch_basis in EPOCH_BASES, f"epoch_basis must be one of {', '.join(EPOCH_BASES)}, got {cfg.epoch_basis}")
    need(cfg.precision in PRECISION_CHOICES,
         f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {cfg.precision}")
    need(cfg.strategy in STRATEGIES, f"unknown strategy {cfg.strategy!r}; choose from {', '.join(STRATEGIES)}")
    need(cfg.cpu_devices >= 0, f"cpu_devices must be >= 0, got {cfg.cpu_devices}")
    need(cfg.curve_every >= 0, f"curve_every must be >= 0 (0 = {CURVE_POINTS} points per run), got {cfg.curve_every}")
    need(cfg.curve_slices >= 1, f"curve_slices must be >= 1, got {cfg.curve_slices}")
    need(cfg.gradient_every >= 0, f"gradient_every must be >= 0 (0 = off), got {cfg.gradient_every}")
    need(cfg.model in MODELS or not cfg.curve_data, f"learning curves (--curve_data) need a translator; {cfg.model} "
         "has none")
    need(cfg.channels == 1, "only single-channel images are supported by the data pipeline")
    problems = cfg.settings.problems()
    need(not problems, problems[0] if problems else "")
