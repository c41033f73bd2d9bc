"""Every training setting in one place: defaults per model, the three profiles, and their resolution.

Precedence (lowest first): ``COMMON`` < ``MODEL_DEFAULTS[model]`` < ``PROFILES[profile]`` (and its per-model
entry) < explicit command-line flags. The resolved :class:`TrainConfig` is written to ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

MODELS = ("cyclegan", "cycle_medgan", "unit")
PROFILE_NAMES = ("smoke", "quick", "paper")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")   # Keras dtype policies
PRECISION_CHOICES = ("auto",) + PRECISIONS      # auto: measured at the start of a run (training/precision.py)
BF16_MIN_SPEEDUP = 1.2          # auto takes mixed_bfloat16 only when its probe convolution is this much faster
STRATEGIES = ("default", "mirrored", "multi_worker")    # see cycle_medgan_tf/training/distribute.py
EPOCH_BASES = ("store", "paper")
# Training slices per domain in the paper's cohorts (Armanious et al. 2019): an epoch of the `paper` profile,
# whatever store it is given, so its step count is the paper's (50 epochs of 30 and 15 batches of 64: 1,500 and 750 steps).
PAPER_EPOCH_SLICES = {"pet_ct": 1935, "mr_motion": 980}
CURVE_POINTS = 8                  # learning-curve points per run when curve_every is 0 (the last step is one)


@dataclass
class TrainConfig:
    """All settings of one training run (see README for the meaning of each)."""

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
    decay_start: float = 0.5          # fraction of the steps after which the lr decays linearly to ~0 (1 = none)
    pool_size: int = 50               # discriminator history pool (CycleGAN family); 0 disables it
    # CycleGAN / Cycle-MedGAN losses
    lambda_cycle: float = 10.0
    lambda_cp: float = 0.0            # cycle-perceptual weight (Cycle-MedGAN)
    lambda_cs: float = 0.0            # cycle-style weight (Cycle-MedGAN)
    perceptual_layer_weights: list = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])   # per phi_i
    style_layer_weights: list = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])        # per phi_i
    extractor: str = ""               # feature-extractor weights; "" = the shipped BiGAN extractor
    # UNIT losses (taki0112 defaults)
    unit_gan_weight: float = 10.0
    unit_recon_weight: float = 100.0
    unit_cycle_weight: float = 100.0
    unit_kl_weight: float = 0.1
    unit_kl_cycle_weight: float = 0.1
    # BiGAN pre-training
    z_dim: int = 200
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
    # distribution (run control: may change between a run and its resume; see docs/DISTRIBUTED.md)
    strategy: str = "default"         # default (one device), mirrored (all GPUs or logical CPUs), multi_worker
    cpu_devices: int = 0              # mirrored without GPUs: split the CPU into this many logical devices

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


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
    "curve_slices": "Learning curves: size of the fixed subset of the tuning store's validation rows (spread over "
                    "its subjects).",
}

COMMON: dict = {}

MODEL_DEFAULTS: dict[str, dict] = {
    # xhujoy/CycleGAN-tensorflow: Adam 2e-4 / 0.5, cycle 10, no identity loss, pool 50, decay over the 2nd half.
    "cyclegan": dict(lr=2e-4, beta1=0.5, beta2=0.999, lambda_cycle=10.0, lambda_cp=0.0, lambda_cs=0.0,
                     decay_start=0.5, pool_size=50),
    # Same machinery plus the two cycle feature losses; weights chosen by the measurement in docs/LOSS_WEIGHTS.md.
    # Per-layer weights equalise each phi_i's generator-gradient norm at initialisation (shipped extractor);
    # lambda_cp / lambda_cs then give each loss about half the adversarial gradient norm.
    "cycle_medgan": dict(lr=2e-4, beta1=0.5, beta2=0.999, lambda_cycle=10.0, lambda_cp=1.8, lambda_cs=1.0,
                         perceptual_layer_weights=[30.0, 18.0, 5.0, 1.0],
                         style_layer_weights=[1.3e6, 3.8e4, 300.0, 1.0], decay_start=0.5, pool_size=50),
    # taki0112/UNIT-Tensorflow: Adam 1e-4, betas (0.5, 0.999), no decay, no pool.
    "unit": dict(lr=1e-4, beta1=0.5, beta2=0.999, decay_start=1.0, pool_size=0),
    # BiGAN pre-training (Donahue et al.): Adam 2e-4 / 0.5.
    "bigan": dict(lr=2e-4, beta1=0.5, beta2=0.999, decay_start=1.0, pool_size=0),
}

PROFILES: dict[str, dict] = {
    # Tests: tiny and fast, but every code path.
    "smoke": dict(image_size=64, batch_size=1, steps=4, log_every=1, image_every=2, checkpoint_every=2,
                  keep_checkpoints=2, precision="float32", curve_every=2),   # float32: the same numbers on every machine
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
PROFILE_MODEL_OVERRIDES: dict[tuple[str, str], dict] = {
    ("quick", "bigan"): dict(steps=2000, batch_size=16, image_every=250, checkpoint_every=250),   # the shipped extractor
}


def resolve_config(model: str, profile: str, overrides: dict | None = None) -> TrainConfig:
    """Build the effective configuration for ``model`` under ``profile`` with explicit ``overrides``."""
    if model not in MODEL_DEFAULTS:
        raise ValueError(f"unknown model {model!r}; choose from {sorted(MODEL_DEFAULTS)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {list(PROFILE_NAMES)}")
    values: dict = {}
    for layer in (COMMON, MODEL_DEFAULTS[model], PROFILES[profile], PROFILE_MODEL_OVERRIDES.get((profile, model), {}),
                  overrides or {}):
        values.update(layer)
    unknown = set(values) - set(TrainConfig.field_names())
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    cfg = TrainConfig(**values)
    cfg.model, cfg.profile = model, profile
    check_config(cfg)
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError with a clear message for any out-of-range setting."""
    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ValueError(message)

    need(cfg.image_size >= 16 and cfg.image_size % 4 == 0, f"image_size must be a multiple of 4 and >= 16, got {cfg.image_size}")
    need(cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}")
    need(cfg.steps >= 0 and cfg.epochs >= 0 and (cfg.steps > 0 or cfg.epochs > 0), "give --steps > 0 or --epochs > 0")
    need(cfg.lr > 0, f"lr must be > 0, got {cfg.lr}")
    need(0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
    need(0 < cfg.decay_start <= 1, f"decay_start must be in (0, 1], got {cfg.decay_start}")
    need(cfg.pool_size >= 0, f"pool_size must be >= 0, got {cfg.pool_size}")
    for name in ("lambda_cycle", "lambda_cp", "lambda_cs", "unit_gan_weight", "unit_recon_weight",
                 "unit_cycle_weight", "unit_kl_weight", "unit_kl_cycle_weight"):
        need(getattr(cfg, name) >= 0, f"{name} must be >= 0, got {getattr(cfg, name)}")
    for name in ("perceptual_layer_weights", "style_layer_weights"):
        weights = getattr(cfg, name)
        need(len(weights) > 0 and all(w >= 0 for w in weights), f"{name} must be non-negative numbers")
    for name in ("log_every", "image_every", "checkpoint_every", "keep_checkpoints"):
        need(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
    need(cfg.epoch_basis in EPOCH_BASES, f"epoch_basis must be one of {', '.join(EPOCH_BASES)}, got {cfg.epoch_basis}")
    need(cfg.precision in PRECISION_CHOICES,
         f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {cfg.precision}")
    need(cfg.strategy in STRATEGIES, f"unknown strategy {cfg.strategy!r}; choose from {', '.join(STRATEGIES)}")
    need(cfg.cpu_devices >= 0, f"cpu_devices must be >= 0, got {cfg.cpu_devices}")
    need(cfg.curve_every >= 0, f"curve_every must be >= 0 (0 = {CURVE_POINTS} points per run), got {cfg.curve_every}")
    need(cfg.curve_slices >= 1, f"curve_slices must be >= 1, got {cfg.curve_slices}")
    need(cfg.model in MODELS or not cfg.curve_data, f"learning curves (--curve_data) need a translator; {cfg.model} "
         "has none")
    need(cfg.channels == 1, "only single-channel images are supported by the data pipeline")
    need(cfg.model != "cyclegan" or (cfg.lambda_cp == 0 and cfg.lambda_cs == 0),
         "the CycleGAN baseline has no cycle feature losses (lambda_cp, lambda_cs); use --model=cycle_medgan")
