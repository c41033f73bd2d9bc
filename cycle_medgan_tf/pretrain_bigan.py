"""Pre-train the BiGAN feature extractor: ``python -m cycle_medgan_tf.pretrain_bigan --data=FILE --workdir=DIR``.

The data are a store of CT slices (``make_default --task=bigan_ct``); the result is
``DIR/feature_extractor.npz`` (+ ``.sha256``), usable by ``train --extractor=DIR/feature_extractor.npz``.
"""

from __future__ import annotations

from cycle_medgan_tf.cli import define_training_flags, run_app
from cycle_medgan_tf.train import train_cli


def main(argv):
    train_cli("bigan")


if __name__ == "__main__":
    define_training_flags(("bigan",), "bigan")
    run_app(main)
