"""The model families: one record each, and the only list of them.

A :class:`Family` record gives a family's name, its Table I row (display name and order; none for the BiGAN
pre-training, which translates nothing), its default settings and per-profile overrides, its own settings block
(a frozen dataclass below: what ``--lambda_*``, ``--unit_*`` and ``--z_dim`` set), and where its trainer, network
builder and FLOP hook live, as ``"module:attribute"`` paths imported on first use. So this module, and
``config.py`` which reads it, stay free of TensorFlow, and no core module imports ``baselines/``: the table names
the baselines' modules, the code is loaded only when a baseline is built. Adding a family is one new module plus
one record here (docs/CONTRIBUTING.md).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Mapping

from cycle_medgan_tf.data.window import WindowError, parse_band


PATCHGAN_LAYER_CHOICES = (1, 2, 3, 4, 5)      # depths models/patchgan.py builds (receptive field 16 to 286 px)
# how the ResNet generator's decoder doubles the resolution (models/resnet_generator.py): "transpose" (3x3 stride-2
# transposed convolution, the faithful recipe), or a resize-convolution, "nearest" or "bilinear" x2 then a 3x3
# convolution: the same parameters without the transposed convolution's uneven overlap, whose period-2 checkerboard
# Odena, Dumoulin & Olah 2016 describe ("Deconvolution and Checkerboard Artifacts", Distill)
UPSAMPLE_CHOICES = ("transpose", "nearest", "bilinear")


def _non_negative(settings, names) -> list[str]:
    return [f"{name} must be >= 0, got {getattr(settings, name)}" for name in names if getattr(settings, name) < 0]


@dataclass(frozen=True)
class CycleSettings:
    """The cycle trainer's losses (xhujoy/CycleGAN-tensorflow; the cycle feature losses of Cycle-MedGAN, Armanious
    et al. 2019, weighted as measured in docs/LOSS_WEIGHTS.md) and its discriminator history pools."""

    lambda_cycle: float = 10.0
    lambda_cp: float = 0.0            # cycle-perceptual weight
    lambda_cs: float = 0.0            # cycle-style weight
    # identity-mapping loss ||G(b) - b||_1 + ||F(a) - a||_1 (Zhu et al. 2017, sec. 5.2; junyanz's PyTorch code uses
    # 0.5 x lambda_cycle): not in xhujoy's implementation, so off in both faithful models; an option
    lambda_identity: float = 0.0
    # structure-consistency loss |MIND(G(a)) - MIND(a)| + |MIND(F(b)) - MIND(b)| (losses.structure_loss; Yang et al.
    # 2018's structure-constrained CycleGAN): in neither faithful model, so off in both; an option
    lambda_structure: float = 0.0
    perceptual_layer_weights: list = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])   # per phi_i
    style_layer_weights: list = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])        # per phi_i
    extractor: str = ""               # feature-extractor weights; "" = the shipped BiGAN extractor
    pool_size: int = 50               # discriminator history pool; 0 disables it
    # stride-2 stages of both PatchGANs (models/patchgan.py): 3 is the faithful 70x70 view; 2 and 1 judge 34x34
    # and 16x16 patches (an option for small images, where 70 pixels are the whole image)
    disc_layers: int = 3
    # the generators' two up-sampling stages (UPSAMPLE_CHOICES): the faithful transposed convolutions, or resize-
    # convolutions as an option
    upsample: str = "transpose"
    # "LO:HI" in domain A's / B's physical units: that discriminator also sees its images softly re-windowed to
    # the band (models/layers.WindowView), e.g. "0:80" HU, the brain window of a CT whose wide window makes a
    # 14 HU grey/white-matter difference 0.01 of the range; in neither faithful model, so off; an option
    disc_window_a: str = ""
    disc_window_b: str = ""

    def problems(self) -> list[str]:
        out = _non_negative(self, ("lambda_cycle", "lambda_cp", "lambda_cs", "lambda_identity", "lambda_structure"))
        if self.disc_layers not in PATCHGAN_LAYER_CHOICES:
            choices = ", ".join(map(str, PATCHGAN_LAYER_CHOICES))
            out.append(f"disc_layers must be one of {choices}, got {self.disc_layers}")
        if self.upsample not in UPSAMPLE_CHOICES:
            out.append(f"upsample must be one of {', '.join(UPSAMPLE_CHOICES)}, got {self.upsample!r}")
        for name in ("disc_window_a", "disc_window_b"):
            try:
                parse_band(getattr(self, name))
            except WindowError as exc:
                out.append(f"{name} {exc}")
        for name in ("perceptual_layer_weights", "style_layer_weights"):
            weights = getattr(self, name)
            if not (len(weights) > 0 and all(w >= 0 for w in weights)):
                out.append(f"{name} must be non-negative numbers")
        if self.pool_size < 0:
            out.append(f"pool_size must be >= 0, got {self.pool_size}")
        return out


@dataclass(frozen=True)
class CycleGANSettings(CycleSettings):
    """The CycleGAN baseline: the cycle settings without the feature losses."""

    def problems(self) -> list[str]:
        out = super().problems()
        if self.lambda_cp != 0 or self.lambda_cs != 0:
            out.append("the CycleGAN baseline has no cycle feature losses (lambda_cp, lambda_cs); "
                       "use --model=cycle_medgan")
        return out


@dataclass(frozen=True)
class UNITSettings:
    """UNIT's loss weights (taki0112/UNIT-Tensorflow defaults)."""

    unit_gan_weight: float = 10.0
    unit_recon_weight: float = 100.0
    unit_cycle_weight: float = 100.0
    unit_kl_weight: float = 0.1
    unit_kl_cycle_weight: float = 0.1

    def problems(self) -> list[str]:
        return _non_negative(self, [f.name for f in dataclasses.fields(self)])


@dataclass(frozen=True)
class BiGANSettings:
    """BiGAN pre-training of the feature extractor (Donahue et al., ICLR 2017)."""

    z_dim: int = 200

    def problems(self) -> list[str]:
        return [] if self.z_dim >= 1 else [f"z_dim must be >= 1, got {self.z_dim}"]


def load(path: str):
    """The attribute named by ``"package.module:attribute"`` (the module is imported now)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Family:
    """One model family. ``trainer``, ``networks``, ``flops`` and ``frozen_parts`` are ``"module:attribute"``."""

    name: str
    display: str                      # row name in Table I, figures and curves
    table_order: int | None           # row of Table I; None: not a translator (not evaluated)
    trainer: str                      # a training.trainer.Trainer subclass
    networks: str                     # (image_size, channels) -> {part: keras.Model}
    settings: type                    # the family's settings block
    defaults: Mapping = field(default_factory=dict)      # TrainConfig and settings defaults of the family
    profiles: Mapping = field(default_factory=dict)      # profile -> overrides of that profile for this family
    tasks: Mapping = field(default_factory=dict)         # main-job task -> overrides chosen for that task
    flops: str | None = None          # trainer -> {call kind: (calls per step, forward FLOPs, cost multiplier)}
    frozen_parts: str | None = None   # image_size -> {part: keras.Model}: counted by models.summary, not trained

    @property
    def translator(self) -> bool:
        return self.table_order is not None

    def setting_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.settings))

    def default_settings(self):
        """The settings block with this family's defaults."""
        return self.settings(**{k: v for k, v in self.defaults.items() if k in self.setting_names()})

    def trainer_class(self):
        return load(self.trainer)

    def build_networks(self, image_size=None, channels=1) -> dict:
        return load(self.networks)(image_size, channels)


# xhujoy/CycleGAN-tensorflow: Adam 2e-4 / 0.5, cycle 10, no identity loss, pool 50, decay over the 2nd half.
_CYCLE_OPTIMISER = dict(lr=2e-4, beta1=0.5, beta2=0.999, lr_schedule="linear_decay", decay_start=0.5)

FAMILIES: tuple[Family, ...] = (
    Family("unit", "UNIT", 0, trainer="baselines.unit:UNITTrainer",
           networks="baselines.unit_networks:build_unit_networks",
           settings=UNITSettings, flops="baselines.unit:step_flop_calls",
           # taki0112/UNIT-Tensorflow: Adam 1e-4, betas (0.5, 0.999), a constant learning rate.
           defaults=dict(lr=1e-4, beta1=0.5, beta2=0.999, lr_schedule="constant", decay_start=1.0)),
    Family("cyclegan", "CycleGAN", 1, trainer="baselines.cyclegan:CycleGANTrainer",
           networks="cycle_medgan_tf.training.cycle:build_cycle_networks", settings=CycleGANSettings,
           flops="cycle_medgan_tf.training.cycle:step_flop_calls",
           defaults=dict(_CYCLE_OPTIMISER, lambda_cycle=10.0, lambda_cp=0.0, lambda_cs=0.0, pool_size=50)),
    # The same machinery plus the two cycle feature losses; weights chosen by the measurement in
    # docs/LOSS_WEIGHTS.md: per-layer weights equalise each phi_i's generator-gradient norm at initialisation
    # (shipped extractor); lambda_cp / lambda_cs then give each loss about half the adversarial gradient norm.
    Family("cycle_medgan", "Cycle-MedGAN", 2, trainer="cycle_medgan_tf.training.cycle:CycleTrainer",
           networks="cycle_medgan_tf.training.cycle:build_cycle_networks", settings=CycleSettings,
           flops="cycle_medgan_tf.training.cycle:step_flop_calls",
           frozen_parts="cycle_medgan_tf.training.cycle:frozen_parts",
           defaults=dict(_CYCLE_OPTIMISER, lambda_cycle=10.0, lambda_cp=1.8, lambda_cs=1.0,
                         perceptual_layer_weights=[30.0, 18.0, 5.0, 1.0],
                         style_layer_weights=[1.3e6, 3.8e4, 300.0, 1.0], pool_size=50),
           # the fidelity study's ablation on the mr_motion tuning store chose cycle-perceptual alone (by the
           # rule written before its runs; docs/FIDELITY.md, docs/LOSS_WEIGHTS.md); on pet_ct no weight helped
           # and the defaults stay
           tasks={"mr_motion": dict(lambda_cp=1.8, lambda_cs=0.0)}),
    # BiGAN pre-training (Donahue et al.): Adam 2e-4 / 0.5; quick: the budget of the shipped extractor.
    Family("bigan", "BiGAN", None, trainer="cycle_medgan_tf.training.bigan:BiGANTrainer",
           networks="cycle_medgan_tf.models.bigan:build_bigan_networks", settings=BiGANSettings,
           defaults=dict(lr=2e-4, beta1=0.5, beta2=0.999, lr_schedule="constant", decay_start=1.0),
           profiles={"quick": dict(steps=2000, batch_size=16, image_every=250, checkpoint_every=250)}),
)

_BY_NAME = {f.name: f for f in FAMILIES}


def names() -> tuple[str, ...]:
    """Every family's name, in record order."""
    return tuple(_BY_NAME)


def translators() -> tuple[Family, ...]:
    """The families that translate (the rows of Table I), in Table I order."""
    return tuple(sorted((f for f in FAMILIES if f.translator), key=lambda f: f.table_order))


def translator_names() -> tuple[str, ...]:
    return tuple(f.name for f in translators())


def display_names() -> dict[str, str]:
    """``{name: display name}`` of the translators, in Table I order."""
    return {f.name: f.display for f in translators()}


def family(name: str) -> Family:
    """The record of ``name`` (``ValueError`` naming the choices for an unknown one)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(names())}")
    return _BY_NAME[name]


def task_defaults(name: str, task: str | None) -> dict:
    """The overrides family ``name`` takes in the main job of ``task`` (empty when the family defaults stand)."""
    return dict(family(name).tasks.get(task, {})) if task else {}


def trainer_class(name: str):
    """The Trainer subclass of family ``name``."""
    return family(name).trainer_class()


def all_setting_names() -> tuple[str, ...]:
    """The settings of every family (each once, in record order): the per-family command-line flags."""
    return tuple(dict.fromkeys(n for f in FAMILIES for n in f.setting_names()))


def setting_fields(models=None) -> list[dataclasses.Field]:
    """The settings fields of ``models`` (default: every family), each name once."""
    seen: dict[str, dataclasses.Field] = {}
    for f in FAMILIES if models is None else [family(m) for m in models]:
        for fld in dataclasses.fields(f.settings):
            seen.setdefault(fld.name, fld)
    return list(seen.values())


def families_with(setting: str) -> list[str]:
    return [f.name for f in FAMILIES if setting in f.setting_names()]
