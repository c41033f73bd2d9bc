"""The default-data command: ``python -m cycle_medgan_tf.data.make_default --task=pet_ct|mr_motion|bigan_ct
--size=64|128|256 --out=FILE [...]``; the generator: ``cycle_medgan_tf/data/make_default.py``."""

from __future__ import annotations

import os
import time

from absl import flags

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.data.make_default import QUICK, DefaultDataError, make_default
from cycle_medgan_tf.data.store import StoreError
from cycle_medgan_tf.data.synth.tasks import PET_MODES, SIZES, TASKS


def define_flags() -> None:
    flags.DEFINE_string("task", None, f"Dataset: {', '.join(sorted(TASKS))}.")
    flags.DEFINE_integer("size", 128, f"Slice size in pixels over a 256 mm field: {', '.join(map(str, SIZES))}.")
    flags.DEFINE_string("out", None, "Output HDF5 slice store.")
    flags.DEFINE_integer("subjects", QUICK.subjects, "Number of subjects (split train A / train B / validation).")
    flags.DEFINE_integer("slices", QUICK.slices, "Axial slices per subject (heights drawn per subject over the "
                         "cerebrum).")
    flags.DEFINE_integer("val_slices", None, "Slices per validation subject (default: --slices).")
    flags.DEFINE_enum("pet", "nac", list(PET_MODES), "pet_ct: non-attenuation-corrected (nac, the input of PET->CT "
                      "synthesis) or attenuation-corrected (ac) PET.")
    flags.DEFINE_integer("seed", 0, "Random seed; each subject draws from (seed, task, subject).")
    flags.DEFINE_integer("workers", None, "Worker processes (default: available cores); output does not "
                         "depend on it.")
    flags.DEFINE_string("preview", None, "Also write a PNG of some validation pairs here.")
    flags.DEFINE_string("transfer_b", "", "Piecewise-linear transfer of domain B's window, VALUE:LEVEL pairs inside "
                        "the window and (-1, 1), e.g. -200:-0.6,300:0.6 (CT soft tissue; data/window.py). "
                        "Empty: linear.")
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.")


def main(argv) -> None:
    """Command-line entry point (flags as in the module docstring)."""
    f = flags.FLAGS
    if not f.task:
        raise DefaultDataError(f"--task is required ({', '.join(sorted(TASKS))})")
    if not f.out:
        raise DefaultDataError("--out is required")
    if f.preview and os.path.exists(f.preview) and not f.overwrite:
        raise DefaultDataError(f"{f.preview} already exists (use --overwrite to replace it)")
    if f.preview and not os.path.isdir(os.path.dirname(os.path.abspath(f.preview))):
        raise DefaultDataError(f"the directory of --preview={f.preview} does not exist")
    start = time.perf_counter()
    path = make_default(f.task, f.size, f.out, f.subjects, f.slices, f.seed, f.workers, f.overwrite, f.pet,
                        f.val_slices, f.transfer_b)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    if f.preview:
        from cycle_medgan_tf.data.synth.preview import save_preview
        print(f"wrote {save_preview(path, f.preview)}")


def run() -> None:
    define_flags()
    run_app(main, errors=(DefaultDataError, StoreError, OSError))


if __name__ == "__main__":
    run()
