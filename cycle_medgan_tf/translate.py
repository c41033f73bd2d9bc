"""Apply a trained, exported translator to real volumes or to a slice store.

    python -m cycle_medgan_tf.translate --model_dir=RUN --input=FILE --output=FILE \\
        [--direction=a2b|b2a --batch_size=16 --split=val|train --suv_factor=F --force --fill_nonfinite --overwrite]

* ``--input`` a NIfTI file or a DICOM series directory: ``--output`` is a float32 NIfTI volume on exactly the
  input's grid (shape and affine), its header description naming the model, with a JSON sidecar
  (``out.json`` beside ``out.nii.gz``) recording the output's units, both normalisations, the SUV factor, any
  filled non-finite voxels and the intensity check. The input is normalised as the training data were (SUV for
  an SUV model: from the DICOM headers, ``--suv_factor`` or the input's JSON sidecar; per-volume percentile or
  z-score), checked against the training window (refused with the likely cause unless ``--force``; non-finite
  voxels refused unless ``--fill_nonfinite``), reoriented to RAS+, resampled in-plane to the model's pixel
  spacing (slices are kept, so nothing is interpolated through-plane), cut into axial slices that are
  centre-cropped or padded to the model's size, windowed to [-1, 1], translated, mapped back through the
  target window and the inverse normalisation, put back into the full slice (the rest filled with the target
  background) and resampled onto the input grid. The same pipeline is the Python API
  :class:`cycle_medgan_tf.inference.Translator`.
* ``--input`` an HDF5 slice store: the source-domain images of ``--split`` are translated and a new store is
  written in which they replace that split's target-domain images (with the source subjects); everything
  else, including the other split's original target images, is copied unchanged. The store's values are in
  the normalised units it records, which must match the model's.
"""

from __future__ import annotations

import os
import sys

import h5py

from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.normalise import from_record
from cycle_medgan_tf.data.store import open_store, write_store
from cycle_medgan_tf.export import read_manifest
from cycle_medgan_tf.inference import (DIRECTIONS, Progress, TranslateError, Translator,  # noqa: F401
                                       check_output_paths, direction_domains, model_spacing, read_prepared,
                                       translate_slices, translate_volume, translate_volume_report)


def check_store_fits(store, manifest: dict, direction: str) -> None:
    """Refuse a store whose pixel spacing or source-domain name differs from the model's."""
    domains = direction_domains(manifest, direction)
    src = DIRECTIONS[direction][0].upper()
    spacing = model_spacing(manifest)
    if abs(store.pixel_spacing_mm - spacing) > 1e-6:
        raise TranslateError(f"{store.path} has {store.pixel_spacing_mm:g} mm pixels but the model was trained "
                             f"at {spacing:g} mm")
    if store.domain_name(src).lower() != domains["source"].lower():
        raise TranslateError(f"{store.path}: domain {src} is {store.domain_name(src)!r} but the model's "
                             f"{direction} source domain is {domains['source']!r}")
    stored = from_record(store.normalisation(src))
    if stored != domains["source_normalisation"]:
        raise TranslateError(f"{store.path}: domain {src} is normalised with {stored.label} but the model was "
                             f"trained on {domains['source_normalisation'].label}")


def translate_store(translator, input_path, output_path, direction: str, *, split: str = "val",
                    batch_size: int = 16, overwrite: bool = False, progress: Progress | None = None,
                    description: str = "") -> str:
    """Write a copy of a slice store whose ``split`` target-domain images are translations of its source ones."""
    if split not in ("val", "train"):
        raise TranslateError(f"split must be 'val' or 'train', got {split!r}")
    with open_store(input_path) as store:
        check_store_fits(store, translator.manifest, direction)
        content = {
            "task": store.task, "domain_a": store.domain_a, "domain_b": store.domain_b,
            "pixel_spacing_mm": store.pixel_spacing_mm, "window_a": store.window_a, "window_b": store.window_b,
            "normalisation_a": store.normalisation("A"), "normalisation_b": store.normalisation("B"),
            "train_a": store.train_images("A")[()], "train_a_subjects": list(store.train_subjects("A")),
            "train_b": store.train_images("B")[()], "train_b_subjects": list(store.train_subjects("B")),
            "val_a": store.val_images("A")[()], "val_b": store.val_images("B")[()],
            "val_subjects": list(store.val_subjects()),
        }
    s, t = DIRECTIONS[direction]
    content[f"{split}_{t}"] = translate_slices(translator, content[f"{split}_{s}"], direction,
                                               batch_size=batch_size, progress=progress)
    if split == "train":
        content[f"train_{t}_subjects"] = content[f"train_{s}_subjects"]
    extra = {"translated_by": description, "translated_split": split, "translated_direction": direction,
             "translated_from": os.path.abspath(os.fspath(input_path))}
    return write_store(output_path, overwrite=overwrite, extra_attrs=extra, **content)


def _progress_line(direction: str) -> Progress:
    """Report progress on stderr: one line rewritten in place on a terminal, else a line per quarter."""
    interactive = sys.stderr.isatty()
    shown = [-1]

    def report(done: int, total: int) -> None:
        quarter = 4 * done // max(total, 1)
        if interactive or quarter > shown[0]:
            shown[0] = quarter
            start, end = ("\r", "\n" if done >= total else "") if interactive else ("", "\n")
            print(f"{start}translating {direction}: {done}/{total} slices", end=end, file=sys.stderr, flush=True)
    return report


def _input_kind(path: str) -> str:
    if not os.path.exists(path):
        raise TranslateError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        return "dicom"
    if volumes.is_nifti_path(path):
        return "nifti"
    if h5py.is_hdf5(path):
        return "store"
    raise TranslateError(f"{path}: unsupported input (expected .nii/.nii.gz, a DICOM series directory or an "
                         f"HDF5 slice store)")


def run(model_dir: str, input_path: str, output_path: str, *, direction: str = "a2b", batch_size: int = 16,
        split: str = "val", overwrite: bool = False, suv_factor: float | None = None, force: bool = False,
        fill_nonfinite: bool = False) -> str:
    """Everything the command line does; checks all inputs before loading the model."""
    if batch_size < 1:
        raise TranslateError(f"--batch_size must be at least 1, got {batch_size}")
    kind = _input_kind(input_path)
    if kind == "store":
        if os.path.exists(output_path) and not overwrite:
            raise TranslateError(f"{output_path} already exists (use --overwrite to replace it)")
    else:
        check_output_paths(output_path, overwrite)
    manifest = read_manifest(model_dir)
    if direction not in manifest.get("directions", []):
        raise TranslateError(f"{model_dir} has no exported {direction} model (has {manifest.get('directions')})")
    direction_domains(manifest, direction)
    if kind == "store":
        with open_store(input_path) as store:
            check_store_fits(store, manifest, direction)
    else:
        prepared = read_prepared(manifest, input_path, direction, suv_factor=suv_factor, force=force,
                                 fill_nonfinite=fill_nonfinite)
    translator = Translator.load(model_dir, direction, batch_size=batch_size)
    progress = _progress_line(direction)
    if kind == "store":
        return translate_store(translator.model, input_path, output_path, direction, split=split,
                               batch_size=batch_size, overwrite=overwrite, progress=progress,
                               description=translator.description())
    return translator.write(prepared, output_path, overwrite=overwrite, progress=progress)


if __name__ == "__main__":       # the command: cycle_medgan_tf/commands/translate.py
    from cycle_medgan_tf.commands.translate import run
    run()
