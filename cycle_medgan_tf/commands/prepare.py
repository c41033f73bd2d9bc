"""The store-building command: ``python -m cycle_medgan_tf.data.prepare --task=NAME --domain_a=A --domain_b=B
--train_a=... --train_b=... --val_pairs=... --out=FILE [...]``; what it checks and builds:
``cycle_medgan_tf/data/prepare.py``."""

from __future__ import annotations

from absl import flags

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.data.inputs import PrepareError, read_pair_list, read_path_list
from cycle_medgan_tf.data.prepare import parse_window, prepare_store, stderr_log
from cycle_medgan_tf.data.store import StoreError
from cycle_medgan_tf.data.volumes import VolumeError


def define_flags() -> None:
    flags.DEFINE_string("task", None, "Task name stored in the file, e.g. pet_ct.")
    flags.DEFINE_string("domain_a", None, "Source domain name (CT, PET or MR... decides defaults).")
    flags.DEFINE_string("domain_b", None, "Target domain name.")
    flags.DEFINE_string("train_a", None, "LIST, folder or glob of domain-A training volumes.")
    flags.DEFINE_string("train_b", None, "LIST, folder or glob of domain-B training volumes (other subjects).")
    flags.DEFINE_string("val_pairs", None, "LIST of co-registered pathA,pathB validation pairs, or DIR_A,DIR_B.")
    flags.DEFINE_string("out", None, "Output HDF5 slice store.")
    flags.DEFINE_integer("size", 256, "Slice size S (S x S pixels).")
    flags.DEFINE_float("spacing_mm", 1.0, "Isotropic voxel size in mm.")
    flags.DEFINE_string("window_a", "", "Intensity window lo,hi of domain A (default by modality).")
    flags.DEFINE_string("window_b", "", "Intensity window lo,hi of domain B (default by modality).")
    flags.DEFINE_string("normalise_a", "none", "Domain A normalisation: none, suv, percentile[:P] or zscore.")
    flags.DEFINE_string("normalise_b", "none", "Domain B normalisation: none, suv, percentile[:P] or zscore.")
    flags.DEFINE_bool("fill_nonfinite", False, "Replace NaN/Inf voxels with the background instead of refusing.")
    flags.DEFINE_float("min_foreground", 0.05, "Drop slices whose foreground fraction is below this.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
    flags.DEFINE_bool("allow_shared_subjects", False, "Accept subjects shared between train A, train B and val.")
    flags.mark_flags_as_required(["task", "domain_a", "domain_b", "train_a", "train_b", "val_pairs", "out"])


def main(argv) -> None:
    """Command-line entry point (flags as in the module docstring)."""
    f = flags.FLAGS
    prepare_store(f.out, task=f.task, domain_a=f.domain_a, domain_b=f.domain_b,
                  train_a=read_path_list(f.train_a, "train_a", stderr_log),
                  train_b=read_path_list(f.train_b, "train_b", stderr_log),
                  val_pairs=read_pair_list(f.val_pairs, "val_pairs", stderr_log), size=f.size,
                  spacing_mm=f.spacing_mm, window_a=parse_window(f.window_a, "window_a"),
                  window_b=parse_window(f.window_b, "window_b"), min_foreground=f.min_foreground,
                  normalise_a=f.normalise_a, normalise_b=f.normalise_b, fill_nonfinite=f.fill_nonfinite,
                  overwrite=f.overwrite, allow_shared_subjects=f.allow_shared_subjects)


def run() -> None:
    define_flags()
    run_app(main, errors=(PrepareError, VolumeError, StoreError, OSError))


if __name__ == "__main__":
    run()
