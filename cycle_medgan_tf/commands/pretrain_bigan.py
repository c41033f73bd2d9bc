"""Pre-train the BiGAN feature extractor: ``python -m cycle_medgan_tf.pretrain_bigan --data=FILE --workdir=DIR``.

The data are a store of CT slices (``make_default --task=bigan_ct``); the result is
``DIR/feature_extractor.npz`` (+ ``.sha256``), usable by ``train --extractor=DIR/feature_extractor.npz``.
"""

from __future__ import annotations

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.commands.train import define_flags, train_cli


def main(argv):
    train_cli()


def run() -> None:
    define_flags(("bigan",), "bigan")
    run_app(main)


if __name__ == "__main__":
    run()
