"""Measure the scale of every Cycle-MedGAN generator-loss term at the start of training, to choose the default
weights of the cycle-perceptual and cycle-style losses (docs/LOSS_WEIGHTS.md).

    python scripts/measure_loss_scales.py --data=STORE [--extractor=FILE] [--batches=8 --image_size=64]

For freshly initialised networks (several seeds) and real batches, it prints one JSON line with the mean value and
the mean gradient norm (over all generator variables) of: the adversarial terms, the weighted cycle L1, and the
unweighted cycle-perceptual and cycle-style losses per feature layer, and both losses with the configured per-layer
weights (before lambda_cp / lambda_cs). A weight lambda makes a term "matter without
dominating" when lambda x its gradient norm is comparable to the adversarial gradient norm. The extractor sees the
images at its native scale, as in training (area down-sampling when the store's pixels are finer).

How the feature losses respond to one physical degradation at different image sizes (forward passes only):
``python -m cycle_medgan_tf.bench.feature_scale``.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
from absl import app, flags

from cycle_medgan_tf import losses
from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.data import pipeline
from cycle_medgan_tf.training.cycle import CycleTrainer
from cycle_medgan_tf.training.trainer import DataInfo

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Store to draw batches from (e.g. the default pet_ct data).")
flags.DEFINE_string("extractor", "", "Feature-extractor file ('' = the shipped one).")
flags.DEFINE_integer("batches", 6, "Batches per seed.")
flags.DEFINE_integer("seeds", 2, "Network initialisations.")
flags.DEFINE_integer("image_size", 64, "Image size.")


def _grad_norm(tape, loss, variables) -> float:
    grads = tape.gradient(loss, variables)
    return float(tf.linalg.global_norm([g for g in grads if g is not None]))


def measure(trainer: CycleTrainer, a, b) -> dict:
    """Value and generator-gradient norm of each term for one batch."""
    variables = trainer.generator_vars
    with tf.GradientTape(persistent=True) as tape:
        fake_b = trainer.g_ab(a, training=True)
        rec_a = trainer.g_ba(fake_b, training=True)
        fake_a = trainer.g_ba(b, training=True)
        rec_b = trainer.g_ab(fake_a, training=True)
        terms = {
            "adversarial": (losses.lsgan_generator_loss(trainer.d_b(fake_b))
                            + losses.lsgan_generator_loss(trainer.d_a(fake_a))),
            "cycle_x10": 10.0 * (losses.l1(a, rec_a) + losses.l1(b, rec_b)),
        }
        fa = [tf.stop_gradient(f) for f in trainer.extractor(a)]
        fb = [tf.stop_gradient(f) for f in trainer.extractor(b)]
        ra, rb = trainer.extractor(rec_a), trainer.extractor(rec_b)
        for i in range(len(fa)):
            w = [1.0 if j == i else 0.0 for j in range(len(fa))]
            terms[f"perceptual_phi{i + 1}"] = (losses.cycle_perceptual_loss(fa, ra, w)
                                               + losses.cycle_perceptual_loss(fb, rb, w))
            terms[f"style_phi{i + 1}"] = losses.cycle_style_loss(fa, ra, w) + losses.cycle_style_loss(fb, rb, w)
        terms["perceptual_sum"] = tf.add_n([terms[f"perceptual_phi{i + 1}"] for i in range(len(fa))])
        terms["style_sum"] = tf.add_n([terms[f"style_phi{i + 1}"] for i in range(len(fa))])
        pw, sw = trainer.cfg.settings.perceptual_layer_weights, trainer.cfg.settings.style_layer_weights
        terms["perceptual_layer_weighted"] = (losses.cycle_perceptual_loss(fa, ra, pw)
                                              + losses.cycle_perceptual_loss(fb, rb, pw))
        terms["style_layer_weighted"] = losses.cycle_style_loss(fa, ra, sw) + losses.cycle_style_loss(fb, rb, sw)
    out = {k: (float(v), _grad_norm(tape, v, variables)) for k, v in terms.items()}
    del tape
    return out


def main(argv):
    del argv
    results: dict[str, list] = {}
    for seed in range(FLAGS.seeds):
        cfg = resolve_config("cycle_medgan", "quick", dict(data=FLAGS.data, workdir="/tmp/unused", seed=seed,
                                                            image_size=FLAGS.image_size, extractor=FLAGS.extractor,
                                                            precision="float32"))
        trainer = CycleTrainer(cfg, DataInfo.from_store(FLAGS.data))
        data = pipeline.train_dataset(FLAGS.data, FLAGS.image_size, 1, seed=seed)
        for a, b in data.take(FLAGS.batches):
            for k, v in measure(trainer, a, b).items():
                results.setdefault(k, []).append(v)
    summary = {k: {"value": float(np.mean([x[0] for x in v])), "grad_norm": float(np.mean([x[1] for x in v]))}
               for k, v in results.items()}
    adv = summary["adversarial"]["grad_norm"]
    for k, v in summary.items():
        v["lambda_matching_adversarial_grad"] = adv / v["grad_norm"] if v["grad_norm"] > 0 else None
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    app.run(main)
