"""UNIT baseline trainer, faithful to taki0112/UNIT-Tensorflow, on the shared training skeleton.

Per step: the discriminators are updated first, then the encoders/generators, each on its own forward pass
(as taki0112's two ``sess.run`` calls), with its own latent noise z = mu + N(0, I). Generator loss, summed over
both domains as taki0112 composes it::

    10 * GAN + 100 * L1(x_aa, x_a) + 100 * L1(x_aba, x_a) + 0.1 * KL(z) + 0.1 * KL(z_bab)   (and for B)

where KL(z) = mean(z^2) of the sampled code of both domains (counted once per domain loss), GAN is the
non-saturating sigmoid cross-entropy and the discriminator loss is 10 * (real + fake) per domain. Inference uses
the latent mean (deterministic).
"""

from __future__ import annotations

import tensorflow as tf

from baselines.unit_networks import build_unit_networks, build_unit_translator
from cycle_medgan_tf import losses
from cycle_medgan_tf.models.registry import forward_flops
from cycle_medgan_tf.training.trainer import Trainer

GENERATOR_PARTS = ("encoder_a", "encoder_b", "shared_encoder", "shared_generator", "decoder_a", "decoder_b")
DISCRIMINATOR_PARTS = ("discriminator_a", "discriminator_b")


class UNITTrainer(Trainer):
    """Coupled VAE-GANs with a shared latent space (Liu et al., NIPS 2017)."""

    def build(self) -> None:
        self.nets = build_unit_networks(image_size=self.cfg.image_size, channels=self.cfg.channels)
        self.generator_vars = [v for p in GENERATOR_PARTS for v in self.nets[p].trainable_variables]
        self.discriminator_vars = [v for p in DISCRIMINATOR_PARTS for v in self.nets[p].trainable_variables]
        self.g_opt = self.make_optimizer(self.generator_vars)
        self.d_opt = self.make_optimizer(self.discriminator_vars)
        self.translators = {"a2b": build_unit_translator(self.nets, "a"), "b2a": build_unit_translator(self.nets, "b")}

    def _encode(self, x, domain: str, seed) -> tuple[tf.Tensor, tf.Tensor]:
        """Sampled shared code z = mu + N(0, I) and the decoder input shared_generator(z)."""
        mu = self.nets["shared_encoder"](self.nets[f"encoder_{domain}"](x, training=True), training=True)
        z = mu + self.dist.replica_random(lambda shape: tf.random.stateless_normal(shape, seed=seed, dtype=mu.dtype),
                                          tf.shape(mu))
        return z, self.nets["shared_generator"](z, training=True)

    def _decode(self, h, domain: str):
        return self.nets[f"decoder_{domain}"](h, training=True)

    def forward(self, a, b, step, salt: int) -> dict:
        """Within-domain reconstructions, translations and cycle reconstructions of one forward pass."""
        z_a, h_a = self._encode(a, "a", self.step_seed(step, salt))
        z_b, h_b = self._encode(b, "b", self.step_seed(step, salt + 1))
        out = dict(z_a=z_a, z_b=z_b, x_aa=self._decode(h_a, "a"), x_ab=self._decode(h_a, "b"),
                   x_bb=self._decode(h_b, "b"), x_ba=self._decode(h_b, "a"))
        return out

    def train_step(self, a, b, step):
        weights = self.cfg.settings          # catalogue.UNITSettings
        d_a, d_b = self.nets["discriminator_a"], self.nets["discriminator_b"]
        with tf.GradientTape() as tape:
            fw = self.forward(a, b, step, salt=11)
            d_loss_a = losses.nonsaturating_discriminator_loss(d_a(a, training=True), d_a(fw["x_ba"], training=True))
            d_loss_b = losses.nonsaturating_discriminator_loss(d_b(b, training=True), d_b(fw["x_ab"], training=True))
            d_total = weights.unit_gan_weight * (d_loss_a + d_loss_b)
        self.apply(self.d_opt, tape, d_total, self.discriminator_vars)

        with tf.GradientTape() as tape:
            fw = self.forward(a, b, step, salt=21)
            z_aba, h_aba = self._encode(fw["x_ab"], "b", self.step_seed(step, 31))
            z_bab, h_bab = self._encode(fw["x_ba"], "a", self.step_seed(step, 33))
            x_aba, x_bab = self._decode(h_aba, "a"), self._decode(h_bab, "b")
            kl_shared = losses.kl_loss(tf.concat([fw["z_a"], fw["z_b"]], axis=0))
            terms = dict(
                gan_a=losses.nonsaturating_generator_loss(d_a(fw["x_ba"], training=True)),
                gan_b=losses.nonsaturating_generator_loss(d_b(fw["x_ab"], training=True)),
                recon_a=losses.l1(fw["x_aa"], a), recon_b=losses.l1(fw["x_bb"], b),
                cycle_a=losses.l1(x_aba, a), cycle_b=losses.l1(x_bab, b),
                kl=kl_shared, kl_cycle_aba=losses.kl_loss(z_aba), kl_cycle_bab=losses.kl_loss(z_bab))
            g_total = (weights.unit_gan_weight * (terms["gan_a"] + terms["gan_b"])
                       + weights.unit_recon_weight * (terms["recon_a"] + terms["recon_b"])
                       + weights.unit_cycle_weight * (terms["cycle_a"] + terms["cycle_b"])
                       + weights.unit_kl_weight * 2.0 * kl_shared
                       + weights.unit_kl_cycle_weight * (terms["kl_cycle_aba"] + terms["kl_cycle_bab"]))
        self.apply(self.g_opt, tape, g_total, self.generator_vars)
        return dict(terms, g_total=g_total, d_a=d_loss_a, d_b=d_loss_b, d_total=d_total)

    def trackables(self) -> dict:
        return dict(self.nets, generator_optimizer=self.g_opt, discriminator_optimizer=self.d_opt)

    def export_models(self) -> dict:
        return self.translators


def step_flop_calls(trainer) -> dict:
    """The network calls of one UNIT train step: ``{kind: (calls per sample, forward FLOPs, cost multiplier)}``
    (3: a call with a backward pass, costed at twice its forward; 1: forward only)."""
    cfg, nets = trainer.cfg, trainer.nets
    shape = (cfg.image_size, cfg.image_size, cfg.channels)
    enc = forward_flops(nets["encoder_a"], shape)
    latent_shape = tuple(nets["shared_encoder"].inputs[0].shape[1:])
    shared = forward_flops(nets["shared_encoder"], latent_shape) + forward_flops(nets["shared_generator"], latent_shape)
    dec = forward_flops(nets["decoder_a"], latent_shape)
    d = forward_flops(nets["discriminator_a"], shape)
    # discriminator update: the two translations (2 encodes, 2 decodes; the unused within-domain
    # reconstructions are pruned from the graph) without gradients, 4 D calls with;
    # generator update: 4 encodes, 6 decodes and 2 D calls, all with gradients.
    return {"d_update_translation": (1, 2 * (enc + shared) + 2 * dec, 1),
            "d_update_discriminator": (4, d, 3),
            "g_update_translation": (1, 4 * (enc + shared) + 6 * dec, 3),
            "g_update_discriminator": (2, d, 3)}
