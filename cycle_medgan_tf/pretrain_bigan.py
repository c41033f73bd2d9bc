"""Pre-train the BiGAN feature extractor: ``python -m cycle_medgan_tf.pretrain_bigan --data=FILE --workdir=DIR``.

The data are a store of CT slices (``make_default --task=bigan_ct``); the result is
``DIR/feature_extractor.npz`` (+ ``.sha256``), usable by ``train --extractor=DIR/feature_extractor.npz``.
"""

from __future__ import annotations

from absl import app

from cycle_medgan_tf.cli import define_training_flags, fail
from cycle_medgan_tf.train import run_cli


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")
    run_cli("bigan")


if __name__ == "__main__":
    define_training_flags(("bigan",), "bigan")
    app.run(main)
