"""The translation command: ``python -m cycle_medgan_tf.translate --model_dir=RUN --input=FILE|DICOMDIR|STORE
--output=FILE [...]``; the translation itself: ``cycle_medgan_tf/translate.py`` and ``inference.py``."""

from __future__ import annotations

import os
import sys

from absl import flags

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.data.store import StoreError
from cycle_medgan_tf.data.volumes import VolumeError
from cycle_medgan_tf.export import ExportError
from cycle_medgan_tf.inference import DIRECTIONS, TranslateError
from cycle_medgan_tf.translate import run as translate_run


def define_flags() -> None:
    flags.DEFINE_string("model_dir", None, "Run directory holding export/manifest.json.")
    flags.DEFINE_string("input", None, "NIfTI file, DICOM series directory or HDF5 slice store.")
    flags.DEFINE_string("output", None, "Output NIfTI file (volume input) or HDF5 store (store input).")
    flags.DEFINE_enum("direction", "a2b", list(DIRECTIONS), "Translation direction.")
    flags.DEFINE_integer("batch_size", 16, "Slices per model call.")
    flags.DEFINE_enum("split", "val", ["val", "train"], "Store input only: which split to translate.")
    flags.DEFINE_float("suv_factor", None, "SUV = value x F for an input to an SUV model (NIfTI without a sidecar).")
    flags.DEFINE_bool("force", False, "Translate even when the input's intensities do not fit the training window.")
    flags.DEFINE_bool("fill_nonfinite", False, "Replace NaN/Inf voxels with the background instead of refusing.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
    flags.mark_flags_as_required(["model_dir", "input", "output"])


def main(argv) -> None:
    """Command-line entry point."""
    f = flags.FLAGS
    path = translate_run(f.model_dir, f.input, f.output, direction=f.direction, batch_size=f.batch_size, split=f.split,
               overwrite=f.overwrite, suv_factor=f.suv_factor, force=f.force, fill_nonfinite=f.fill_nonfinite)
    print(f"wrote {path}", file=sys.stderr)


def run() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow is imported later, by load_translator
    define_flags()
    run_app(main, errors=(TranslateError, VolumeError, StoreError, ExportError, OSError))


if __name__ == "__main__":
    run()
