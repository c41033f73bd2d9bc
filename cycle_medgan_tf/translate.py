"""Apply a trained, exported translator to real volumes or to a slice store.

    python -m cycle_medgan_tf.translate --model_dir=RUN --input=FILE --output=FILE \\
        [--direction=a2b|b2a --batch_size=16 --split=val|train --overwrite]

* ``--input`` a NIfTI file or a DICOM series directory: ``--output`` is a float32 NIfTI volume in the target
  domain's physical units on exactly the input's grid (shape and affine), its header description naming the
  model. The volume is reoriented to RAS+, resampled in-plane to the model's pixel spacing (slices are kept, so
  nothing is interpolated through-plane), cut into axial slices that are centre-cropped or padded to the
  model's size, windowed to [-1, 1], translated, mapped back through the target window, put back into the
  full slice (the rest filled with the target background) and resampled onto the input grid.
* ``--input`` an HDF5 slice store: the source-domain images of ``--split`` are translated and a new store is
  written in which they replace that split's target-domain images (with the source subjects); everything
  else, including the other split's original target images, is copied unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import h5py
import numpy as np

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.store import StoreError, from_model_range, open_store, to_model_range, write_store
from cycle_medgan_tf.data.volumes import Volume, VolumeError
from cycle_medgan_tf.export import ExportError, load_translator, read_manifest

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}
DEFAULT_SPACING_MM = 1.0

Progress = Callable[[int, int], None]


class TranslateError(Exception):
    """Bad input for translation; the message is meant for the user."""


def direction_domains(manifest: dict, direction: str) -> dict:
    """Source and target domain names and windows of ``direction`` in an export manifest."""
    if direction not in DIRECTIONS:
        raise TranslateError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
    src, tgt = DIRECTIONS[direction]
    return {"source": str(manifest[f"domain_{src}"]), "target": str(manifest[f"domain_{tgt}"]),
            "source_window": tuple(float(v) for v in manifest[f"window_{src}"]),
            "target_window": tuple(float(v) for v in manifest[f"window_{tgt}"])}


def model_spacing(manifest: dict) -> float:
    """The model's pixel spacing in mm (1 mm, with a warning, for manifests that lack it)."""
    if "pixel_spacing_mm" not in manifest:
        print(f"translate: warning: export manifest has no pixel_spacing_mm; assuming {DEFAULT_SPACING_MM:g} mm",
              file=sys.stderr)
        return DEFAULT_SPACING_MM
    return float(manifest["pixel_spacing_mm"])


def _check_direction(translator, direction: str) -> None:
    loaded = getattr(translator, "direction", direction)
    if loaded != direction:
        raise TranslateError(f"translator was loaded for {loaded!r}, not {direction!r}")


def translate_slices(translator, slices: np.ndarray, direction: str, *, batch_size: int = 16,
                     progress: Progress | None = None) -> np.ndarray:
    """Translate (N, H, W) slices in the source domain's physical units to the target domain's units.

    Slices are centre-cropped/padded to the model size for translation and put back to (H, W) afterwards,
    with the target background outside the translated square.
    """
    _check_direction(translator, direction)
    domains = direction_domains(translator.manifest, direction)
    size = int(translator.manifest["image_size"])
    slices = np.asarray(slices, dtype=np.float32)
    model_input = volumes.center_crop_pad(slices, size, volumes.background_value(domains["source"]))
    translated = np.empty_like(model_input)
    total = len(model_input)
    for start in range(0, total, batch_size):
        batch = to_model_range(model_input[start:start + batch_size], domains["source_window"])[..., None]
        output = np.asarray(translator(batch), dtype=np.float32)
        if output.shape != batch.shape:
            raise TranslateError(f"translator returned shape {output.shape} for input {batch.shape}")
        translated[start:start + batch_size] = from_model_range(np.clip(output[..., 0], -1, 1),
                                                                domains["target_window"])
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return volumes.center_uncrop(translated, slices.shape[-2:], volumes.background_value(domains["target"]))


def translate_volume(translator, volume: Volume, direction: str, *, batch_size: int = 16,
                     progress: Progress | None = None) -> Volume:
    """Translate a whole volume; the result is on the input's grid (same shape and affine), target units."""
    domains = direction_domains(translator.manifest, direction)
    spacing = model_spacing(translator.manifest)
    source_fill = volumes.background_value(domains["source"])
    target_fill = volumes.background_value(domains["target"])
    canonical = volumes.canonical_geometry(volume.shape, volume.affine)
    grid = volumes.resampled_grid(*canonical, (spacing, spacing, None))
    work = volumes.resample_to_grid(volume, *grid, cval=source_fill)
    translated = translate_slices(translator, volumes.axial_slices(work), direction, batch_size=batch_size,
                                  progress=progress)
    target_modality = volumes.DICOM_MODALITY_CODES.get(volumes.modality_kind(domains["target"]) or "", "")
    result = volumes.volume_from_axial_slices(translated, work, modality=target_modality)
    back = volumes.resample_to_grid(result, volume.shape, volume.affine, cval=target_fill)
    return Volume(back.data, volume.affine, target_modality,
                  f"{translator.manifest.get('model', 'model')} {direction} of {volume.source}")


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
        split: str = "val", overwrite: bool = False) -> str:
    """Everything the command line does; checks all inputs before loading the model."""
    if batch_size < 1:
        raise TranslateError(f"--batch_size must be at least 1, got {batch_size}")
    kind = _input_kind(input_path)
    if os.path.exists(output_path) and not overwrite:
        raise TranslateError(f"{output_path} already exists (use --overwrite to replace it)")
    if kind != "store" and not volumes.is_nifti_path(output_path):
        raise TranslateError(f"{output_path}: output of a volume translation must end in .nii or .nii.gz")
    manifest = read_manifest(model_dir)
    if direction not in manifest.get("directions", []):
        raise TranslateError(f"{model_dir} has no exported {direction} model (has {manifest.get('directions')})")
    domains = direction_domains(manifest, direction)
    description = f"cycle-medgan-tf {manifest['model']} {domains['source']}->{domains['target']} " \
                  f"{manifest['task']} {os.path.basename(os.path.normpath(model_dir))}"
    volume = None
    if kind == "store":
        with open_store(input_path) as store:
            check_store_fits(store, manifest, direction)
    else:
        volume = volumes.read_volume(input_path)
        expected = volumes.modality_kind(domains["source"])
        actual = volumes.modality_kind(volume.modality) if volume.modality else None
        if expected and actual and expected != actual:
            raise TranslateError(f"{input_path} is a {volume.modality} series but the model's {direction} source "
                                 f"domain is {domains['source']} (wrong --direction?)")
    translator = load_translator(model_dir, direction, batch_size=batch_size)
    progress = _progress_line(direction)
    if kind == "store":
        return translate_store(translator, input_path, output_path, direction, split=split,
                               batch_size=batch_size, overwrite=overwrite, progress=progress,
                               description=description)
    result = translate_volume(translator, volume, direction, batch_size=batch_size, progress=progress)
    return volumes.write_nifti(result, output_path, description=description, overwrite=overwrite)


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("model_dir", None, "Run directory holding export/manifest.json.")
    flags.DEFINE_string("input", None, "NIfTI file, DICOM series directory or HDF5 slice store.")
    flags.DEFINE_string("output", None, "Output NIfTI file (volume input) or HDF5 store (store input).")
    flags.DEFINE_enum("direction", "a2b", list(DIRECTIONS), "Translation direction.")
    flags.DEFINE_integer("batch_size", 16, "Slices per model call.")
    flags.DEFINE_enum("split", "val", ["val", "train"], "Store input only: which split to translate.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
    flags.mark_flags_as_required(["model_dir", "input", "output"])


def main(argv) -> None:
    """Command-line entry point."""
    from absl import flags

    f = flags.FLAGS
    path = run(f.model_dir, f.input, f.output, direction=f.direction, batch_size=f.batch_size, split=f.split,
               overwrite=f.overwrite)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow is imported later, by load_translator
    _define_flags()
    run_app(main, errors=(TranslateError, VolumeError, StoreError, ExportError, OSError))
