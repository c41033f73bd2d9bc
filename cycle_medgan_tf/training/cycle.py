"""The CycleGAN family trainer (xhujoy/CycleGAN-tensorflow semantics); Cycle-MedGAN is the same trainer with
its two cycle feature losses switched on (``lambda_cp``, ``lambda_cs`` > 0). Settings: ``catalogue.CycleSettings``.

One step: both generators are updated first on
``L_adv(G, D_B) + L_adv(F, D_A) + lambda_cycle * L_cyc [+ lambda_cp * L_cp + lambda_cs * L_cs]
[+ lambda_identity * L_id] [+ lambda_structure * L_MIND]``
with one Adam; then both discriminators on ``(real + fake) / 2`` LSGAN losses each, with the fakes of this step
passed through the 50-image history pools, with the other Adam. Under ``tf.distribute`` the pools are queried once
per step on the fakes of all replicas (``Distribution.across_replicas``), as on one device. The feature losses see
images at the extractor's native pixel spacing (``models/pretrained.py``: area down-sampling in the graph when the
run's pixels are finer). With ``--disc_window_a/b`` a discriminator also sees its images re-windowed to a narrow
band of physical values (``models/layers.WindowView``).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from cycle_medgan_tf import losses
from cycle_medgan_tf.data.window import band_levels, parse_band
from cycle_medgan_tf.models.patchgan import DEFAULT_LAYERS, build_patchgan_discriminator
from cycle_medgan_tf.models.registry import forward_flops
from cycle_medgan_tf.models.resnet_generator import build_resnet_generator
from cycle_medgan_tf.training.pool import HistoryPool
from cycle_medgan_tf.training.trainer import TranslatorTrainer

EXTRACTOR_PART = "feature_extractor (frozen)"


def build_cycle_networks(image_size=None, channels=1, disc_layers=DEFAULT_LAYERS, upsample="transpose",
                         disc_window_levels=(None, None)) -> dict:
    """generator_a2b, generator_b2a (ResNet-9, transposed-convolution decoder unless ``upsample`` says otherwise)
    and discriminator_a, discriminator_b (PatchGAN, 70x70 unless ``disc_layers`` says otherwise; each given a
    window view when its entry of ``disc_window_levels`` is a (low, high) pair of model levels): the networks of
    CycleGAN and Cycle-MedGAN (whose frozen extractor belongs to its losses: :func:`frozen_parts`)."""
    return {     # generators first: the order fixes each seed's initial weights
        **{name: build_resnet_generator(image_size, channels, name=name, upsample=upsample)
           for name in ("generator_a2b", "generator_b2a")},
        **{name: build_patchgan_discriminator(image_size, channels, name=name, n_layers=disc_layers,
                                              window_levels=levels)
           for name, levels in zip(("discriminator_a", "discriminator_b"), disc_window_levels)},
    }


def discriminator_window_levels(settings, window_a, window_b) -> tuple:
    """The model levels of ``--disc_window_a`` / ``--disc_window_b`` in the store's windows (None where unset);
    ``ValueError`` (one line) for a band outside its domain's window."""
    levels = []
    for letter, text, window in (("a", settings.disc_window_a, window_a), ("b", settings.disc_window_b, window_b)):
        band = parse_band(text)
        levels.append(None if band is None else band_levels(band, window, what=f"--disc_window_{letter}"))
    return tuple(levels)


def frozen_parts(image_size) -> dict:
    """Cycle-MedGAN's frozen BiGAN feature extractor, as the parameter summary lists it."""
    from cycle_medgan_tf.models.bigan import build_feature_extractor
    return {EXTRACTOR_PART: build_feature_extractor(image_size=image_size)}


def step_flop_calls(trainer) -> dict:
    """The network calls of one train step: ``{kind: (calls per sample, forward FLOPs, cost multiplier)}`` (3: a
    call with a backward pass, costed at twice its forward; 1: forward only)."""
    cfg = trainer.cfg
    shape = (cfg.image_size, cfg.image_size, cfg.channels)
    g = forward_flops(trainer.g_ab, shape)
    d = forward_flops(trainer.d_a, shape)
    # generator update: 4 generator calls (6 with the identity loss), 2 discriminator calls (all with gradients);
    # discriminator update: 4 discriminator calls (real and pooled fake of each domain).
    calls = {"generator": (4 + 2 * (cfg.settings.lambda_identity > 0), g, 3), "discriminator": (6, d, 3)}
    if trainer.use_features:
        e = forward_flops(trainer.extractor, shape)
        # the frozen extractor: forward only on the real images, forward + input gradient on reconstructions
        calls["extractor_real"] = (2, e, 1)
        calls["extractor_reconstructed"] = (2, e, 2)
    return calls


class CycleTrainer(TranslatorTrainer):
    """Two ResNet-9 generators (A->B ``G``, B->A ``F``), two PatchGAN discriminators, LSGAN + cycle L1,
    and optionally the Cycle-MedGAN feature losses on a frozen feature extractor."""

    def build(self) -> None:
        cfg, settings = self.cfg, self.cfg.settings
        self.use_features = settings.lambda_cp > 0 or settings.lambda_cs > 0
        if self.use_features:       # first: a file or scale that does not fit is refused before any network is built
            from cycle_medgan_tf.models.pretrained import build_feature_extractor, prepare_feature_extractor
            # fed at its native scale: the run's images are area-down-sampled in the graph when they are finer
            extractor = prepare_feature_extractor(settings.extractor or None, self.run_pixel_spacing_mm(),
                                                  cfg.image_size)
        nets = build_cycle_networks(cfg.image_size, cfg.channels, settings.disc_layers, settings.upsample,
                                    discriminator_window_levels(settings, self.info.window_a,
                                                                self.info.window_b))
        self.g_ab, self.g_ba = nets["generator_a2b"], nets["generator_b2a"]
        self.d_a, self.d_b = nets["discriminator_a"], nets["discriminator_b"]
        self.generator_vars = self.g_ab.trainable_variables + self.g_ba.trainable_variables
        self.discriminator_vars = self.d_a.trainable_variables + self.d_b.trainable_variables
        self.g_opt = self.make_optimizer(self.generator_vars)
        self.d_opt = self.make_optimizer(self.discriminator_vars)
        shape = (cfg.image_size, cfg.image_size, cfg.channels)
        self.pool_a = HistoryPool(settings.pool_size, shape, name="pool_a")
        self.pool_b = HistoryPool(settings.pool_size, shape, name="pool_b")
        self.extractor = None
        if self.use_features:
            self.extractor = build_feature_extractor(*extractor)
            self.perceptual_weights = [float(w) for w in settings.perceptual_layer_weights]
            self.style_weights = [float(w) for w in settings.style_layer_weights]
            for name, weights in (("perceptual", self.perceptual_weights), ("style", self.style_weights)):
                if len(weights) != len(self.extractor.outputs):
                    raise ValueError(f"{name}_layer_weights has {len(weights)} entries but the extractor has "
                                     f"{len(self.extractor.outputs)} feature layers")

    def feature_losses(self, real, reconstructed) -> tuple[tf.Tensor, tf.Tensor]:
        """(cycle-perceptual, cycle-style) between one domain's inputs and their cycle reconstructions."""
        features_real = [tf.stop_gradient(f) for f in self.extractor(real, training=False)]
        features_rec = self.extractor(reconstructed, training=False)
        return (losses.cycle_perceptual_loss(features_real, features_rec, self.perceptual_weights),
                losses.cycle_style_loss(features_real, features_rec, self.style_weights))

    def generator_losses(self, a, b) -> tuple[dict, tf.Tensor, tf.Tensor]:
        """All generator-side losses for one batch, plus this step's fakes (for the pools)."""
        fake_b = self.g_ab(a, training=True)
        rec_a = self.g_ba(fake_b, training=True)
        fake_a = self.g_ba(b, training=True)
        rec_b = self.g_ab(fake_a, training=True)
        out = {
            "g_adv_a2b": losses.lsgan_generator_loss(self.d_b(fake_b, training=True)),
            "g_adv_b2a": losses.lsgan_generator_loss(self.d_a(fake_a, training=True)),
            "cycle": losses.l1(a, rec_a) + losses.l1(b, rec_b),
        }
        weights = self.cfg.settings
        total = out["g_adv_a2b"] + out["g_adv_b2a"] + weights.lambda_cycle * out["cycle"]
        if weights.lambda_identity > 0:     # each generator applied to its own target domain should change nothing
            out["identity"] = losses.l1(b, self.g_ab(b, training=True)) + losses.l1(a, self.g_ba(a, training=True))
            total += weights.lambda_identity * out["identity"]
        if weights.lambda_structure > 0:    # each translation keeps its input's local structure (MIND)
            smooth = losses.MIND_SMOOTH_MM / self.run_pixel_spacing_mm()
            out["structure"] = losses.structure_loss(a, fake_b, smooth) + losses.structure_loss(b, fake_a, smooth)
            total += weights.lambda_structure * out["structure"]
        if self.use_features:
            cp_a, cs_a = self.feature_losses(a, rec_a)
            cp_b, cs_b = self.feature_losses(b, rec_b)
            out["cycle_perceptual"] = cp_a + cp_b
            out["cycle_style"] = cs_a + cs_b
            total += weights.lambda_cp * out["cycle_perceptual"] + weights.lambda_cs * out["cycle_style"]
        out["g_total"] = total
        return out, fake_a, fake_b

    def weighted_terms(self, losses_: dict) -> dict:
        """The terms of ``g_total`` as they enter it (weights applied; zero-weight terms left out)."""
        weights = self.cfg.settings
        terms = {"adversarial": losses_["g_adv_a2b"] + losses_["g_adv_b2a"],
                 "cycle": weights.lambda_cycle * losses_["cycle"]}
        for name, weight in (("identity", weights.lambda_identity), ("structure", weights.lambda_structure),
                             ("cycle_perceptual", weights.lambda_cp),
                             ("cycle_style", weights.lambda_cs)):
            if weight > 0 and name in losses_:
                terms[name] = weight * losses_[name]
        return terms

    @tf.function(reduce_retracing=True)
    def gradient_norms(self, a, b) -> dict:
        """Global norm of the generators' gradient of each weighted loss term and of their sum (``total``) on one
        batch; no variable changes (the question of docs/FIDELITY.md: how much each term steers training)."""
        with tf.GradientTape(persistent=True) as tape:
            g_losses, _, _ = self.generator_losses(a, b)
            terms = dict(self.weighted_terms(g_losses), total=g_losses["g_total"])
        out = {name: tf.linalg.global_norm([g for g in tape.gradient(tf.cast(term, tf.float32), self.generator_vars)
                                            if g is not None]) for name, term in terms.items()}
        del tape
        return out

    def train_step(self, a, b, step):
        with tf.GradientTape() as tape:
            g_losses, fake_a, fake_b = self.generator_losses(a, b)
        self.apply(self.g_opt, tape, g_losses["g_total"], self.generator_vars)

        seed_a, seed_b = self.step_seed(step, 1), self.step_seed(step, 3)
        pooled_a, pooled_b = self.dist.across_replicas(          # once per step, on the global batch
            lambda fakes_a, fakes_b: (self.pool_a.query(fakes_a, seed_a), self.pool_b.query(fakes_b, seed_b)),
            tf.stop_gradient(fake_a), tf.stop_gradient(fake_b))
        with tf.GradientTape() as tape:
            d_a = losses.lsgan_discriminator_loss(self.d_a(a, training=True), self.d_a(pooled_a, training=True))
            d_b = losses.lsgan_discriminator_loss(self.d_b(b, training=True), self.d_b(pooled_b, training=True))
            d_total = d_a + d_b
        self.apply(self.d_opt, tape, d_total, self.discriminator_vars)
        return dict(g_losses, d_a=d_a, d_b=d_b, d_total=d_total)

    def trackables(self) -> dict:
        return dict(generator_a2b=self.g_ab, generator_b2a=self.g_ba, discriminator_a=self.d_a,
                    discriminator_b=self.d_b, generator_optimizer=self.g_opt, discriminator_optimizer=self.d_opt,
                    pool_a=self.pool_a, pool_b=self.pool_b)

    def export_models(self) -> dict:
        return {"a2b": self.g_ab, "b2a": self.g_ba}

    def manifest(self) -> dict:
        out = super().manifest()
        if self.extractor is not None:
            out["feature_extractor"] = dict(dataclasses.asdict(self.extractor.extractor_scale),
                                            file=self.cfg.settings.extractor or "shipped")
        return out
