"""BiGAN pre-training (Donahue et al., ICLR 2017) of the feature extractor on CT slices.

D(x, z) separates (x, E(x)) from (G(z), z); E and G are trained to fool it (non-saturating: labels swapped).
Settings: ``catalogue.BiGANSettings``. Both domains of the ``bigan_ct`` store are CT, so a step uses the A and B
batches together. Under ``tf.distribute``
the BatchNorm statistics are per replica, so it is not equivalent to one device (docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import os

import tensorflow as tf

from cycle_medgan_tf import losses
from cycle_medgan_tf.models.bigan import build_bigan, image_path_weights
from cycle_medgan_tf.models.pretrained import save_extractor_weights
from cycle_medgan_tf.training.trainer import RepresentationTrainer

EXTRACTOR_FILE = "feature_extractor.npz"


class BiGANTrainer(RepresentationTrainer):
    """Encoder, generator and joint discriminator; exports the discriminator's image-path weights with the scale
    they were trained at (``image_size`` and the pixel spacing of the images it saw, ``pixel_spacing_mm``)."""

    def build(self) -> None:
        nets = build_bigan(self.cfg.image_size, self.cfg.settings.z_dim)
        self.encoder, self.generator, self.discriminator = nets["encoder"], nets["generator"], nets["discriminator"]
        self.eg_vars = self.encoder.trainable_variables + self.generator.trainable_variables
        self.d_vars = self.discriminator.trainable_variables
        self.eg_opt = self.make_optimizer(self.eg_vars)
        self.d_opt = self.make_optimizer(self.d_vars)

    def train_step(self, a, b, step):
        x = tf.concat([a, b], axis=0)
        seed = self.step_seed(step, 5)
        z = self.dist.replica_random(lambda shape: tf.random.stateless_uniform(shape, seed, -1.0, 1.0),
                                     (tf.shape(x)[0], self.cfg.settings.z_dim))
        with tf.GradientTape(persistent=True) as tape:
            z_hat = self.encoder(x, training=True)
            x_hat = self.generator(z, training=True)
            real_logits = self.discriminator([x, z_hat], training=True)
            fake_logits = self.discriminator([x_hat, z], training=True)
            d_loss = losses.nonsaturating_discriminator_loss(real_logits, fake_logits)
            eg_loss = losses.bce_with_logits(real_logits, 0.0) + losses.bce_with_logits(fake_logits, 1.0)
        self.apply(self.d_opt, tape, d_loss, self.d_vars)
        self.apply(self.eg_opt, tape, eg_loss, self.eg_vars)
        del tape
        recon = losses.l1(x, self.generator(z_hat, training=False))
        return {"d": d_loss, "eg": eg_loss, "recon_l1": recon}

    def trackables(self) -> dict:
        return dict(encoder=self.encoder, generator=self.generator, discriminator=self.discriminator,
                    eg_optimizer=self.eg_opt, d_optimizer=self.d_opt)

    def sample_grid(self, a, b):
        """Rows: real x, G(E(x)) reconstructions, G(z) samples."""
        x = a[:4]
        z = tf.random.stateless_uniform((tf.shape(x)[0], self.cfg.settings.z_dim), [0, 0], -1.0, 1.0)
        rows = [x, self.generator(self.encoder(x, training=False), training=False), self.generator(z, training=False)]
        return tf.concat([tf.concat(tf.unstack(r), axis=1) for r in rows], axis=0)[..., 0].numpy()

    def export(self, workdir: str) -> str:
        path = os.path.join(workdir, EXTRACTOR_FILE)
        meta = dict(source="BiGAN discriminator image path", task=self.info.task, data=os.path.basename(self.info.path),
                    image_size=self.cfg.image_size, pixel_spacing_mm=self.run_pixel_spacing_mm(),
                    store_pixel_spacing_mm=self.info.pixel_spacing_mm, z_dim=self.cfg.settings.z_dim,
                    steps=int(self.step.numpy()), seed=self.cfg.seed, batch_size=self.cfg.batch_size)
        save_extractor_weights(path, image_path_weights(self.discriminator), meta)
        return path
