"""Inference in physical units with an exported model: the Python API behind ``python -m cycle_medgan_tf.translate``.

    from cycle_medgan_tf import Translator
    t = Translator.load("RUN")                       # direction="a2b" by default
    t.translate_volume("pet.nii.gz", "ct.nii.gz")    # NIfTI file or DICOM series in, NIfTI (+ .json sidecar) out
    ct_slices = t(pet_slices)                        # (H, W) or (N, H, W) at the model's pixel spacing

Both apply what training saw: the source domain's normalisation (SUV from the DICOM headers, a JSON sidecar or
``suv_factor``; per-volume percentile or z-score from the input's own head voxels), the window, the model, then
the target window and the inverse normalisation (:func:`cycle_medgan_tf.data.normalise.output_scaling`). Before
the model runs, non-finite voxels are refused (or filled with ``fill_nonfinite``) and the input's intensities are
checked against the training window (:mod:`cycle_medgan_tf.data.intensity`; ``force`` skips the refusal).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.intensity import IntensityReport, check_intensity, intensity_report
from cycle_medgan_tf.data.normalise import (IDENTITY, LoadedVolume, from_record, head_mask, normalise_volume,
                                            output_scaling)
from cycle_medgan_tf.data.store import from_model_range, to_model_range
from cycle_medgan_tf.data.window import manifest_window
from cycle_medgan_tf.data.suv import sidecar_path
from cycle_medgan_tf.data.volumes import Volume, VolumeError

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}
DEFAULT_SPACING_MM = 1.0

Progress = Callable[[int, int], None]


class TranslateError(Exception):
    """Bad input for translation; the message is meant for the user."""


def direction_domains(manifest: dict, direction: str) -> dict:
    """Source and target domain names, windows and normalisations of ``direction`` in an export manifest."""
    if direction not in DIRECTIONS:
        raise TranslateError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
    src, tgt = DIRECTIONS[direction]
    return {"source": str(manifest[f"domain_{src}"]), "target": str(manifest[f"domain_{tgt}"]),
            "source_letter": src, "target_letter": tgt,
            "source_window": manifest_window(manifest, src),
            "target_window": manifest_window(manifest, tgt),
            "source_normalisation": from_record(manifest.get(f"normalisation_{src}")),
            "target_normalisation": from_record(manifest.get(f"normalisation_{tgt}"))}


def model_spacing(manifest: dict) -> float:
    """The model's pixel spacing in mm (1 mm, with a warning, for manifests that lack it)."""
    if "pixel_spacing_mm" not in manifest:
        print(f"translate: warning: export manifest has no pixel_spacing_mm; assuming {DEFAULT_SPACING_MM:g} mm",
              file=sys.stderr)
        return DEFAULT_SPACING_MM
    return float(manifest["pixel_spacing_mm"])


def _check_direction(model, direction: str) -> None:
    loaded = getattr(model, "direction", direction)
    if loaded != direction:
        raise TranslateError(f"translator was loaded for {loaded!r}, not {direction!r}")


def translate_slices(model, slices: np.ndarray, direction: str, *, batch_size: int = 16,
                     progress: Progress | None = None, source_fill: float | None = None,
                     target_fill: float | None = None) -> np.ndarray:
    """Translate (N, H, W) slices in the source window's units to the target window's units (model range
    through the windows; no normalisation here).

    Slices are centre-cropped/padded to the model size (with ``source_fill``, default the source background)
    and put back to (H, W) afterwards, with ``target_fill`` (default the target background) outside the square.
    """
    _check_direction(model, direction)
    domains = direction_domains(model.manifest, direction)
    size = int(model.manifest["image_size"])
    source_fill = volumes.background_value(domains["source"]) if source_fill is None else source_fill
    target_fill = volumes.background_value(domains["target"]) if target_fill is None else target_fill
    slices = np.asarray(slices, dtype=np.float32)
    model_input = volumes.center_crop_pad(slices, size, source_fill)
    translated = np.empty_like(model_input)
    total = len(model_input)
    for start in range(0, total, batch_size):
        batch = to_model_range(model_input[start:start + batch_size], domains["source_window"])[..., None]
        output = np.asarray(model(batch), dtype=np.float32)
        if output.shape != batch.shape:
            raise TranslateError(f"translator returned shape {output.shape} for input {batch.shape}")
        translated[start:start + batch_size] = from_model_range(np.clip(output[..., 0], -1, 1),
                                                                domains["target_window"])
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return volumes.center_uncrop(translated, slices.shape[-2:], target_fill)


def _checked(manifest: dict, direction: str, data: np.ndarray, source: str, force: bool) -> IntensityReport:
    """The intensity report of normalised ``data``; raises IntensityError unless ``force``."""
    domains = direction_domains(manifest, direction)
    report = intensity_report(data, head_mask(data), domains["source_window"])
    if not force:
        check_intensity(report, domains["source_window"], source=source,
                        kind=volumes.modality_kind(domains["source"]),
                        method=domains["source_normalisation"].method, letter=domains["source_letter"])
    return report


def _output_mapping(manifest: dict, direction: str, loaded: LoadedVolume):
    """(scaling back to output units, unit label, fill in the target's normalised units, fill in output units)."""
    domains = direction_domains(manifest, direction)
    same = volumes.modality_kind(domains["source"]) == volumes.modality_kind(domains["target"])
    scaling, units = output_scaling(domains["source_normalisation"], domains["target_normalisation"],
                                    loaded.scaling, same)
    if scaling is None:
        fill = domains["target_window"][0]
        return IDENTITY, units, fill, fill
    background = volumes.background_value(domains["target"])
    return scaling, units, float(scaling.forward(background)), background


@dataclass
class PreparedVolume:
    """A volume normalised, resampled in-plane to the model's spacing and checked: ready for the model."""

    original: Volume
    work: Volume                # normalised, on the in-plane-resampled canonical grid
    loaded: LoadedVolume
    record: dict


def prepare_volume(manifest: dict, volume: Volume, direction: str, *, path=None, suv_factor: float | None = None,
                   force: bool = False, fill_nonfinite: bool = False) -> PreparedVolume:
    """Everything before the model: normalisation (with SUV and non-finite handling), resampling, the check."""
    domains = direction_domains(manifest, direction)
    loaded = normalise_volume(volume, domains["source_normalisation"], domains["source"], path=path,
                              suv_factor=suv_factor, fill_nonfinite=fill_nonfinite)
    spacing = model_spacing(manifest)
    canonical = volumes.canonical_geometry(volume.shape, volume.affine)
    grid = volumes.resampled_grid(*canonical, (spacing, spacing, None))
    work = volumes.resample_to_grid(loaded.volume, *grid, cval=loaded.background)
    report = _checked(manifest, direction, work.data, volume.source or str(path or "input"), force)
    _, units, _, _ = _output_mapping(manifest, direction, loaded)
    record = {"model": manifest.get("model"), "task": manifest.get("task"), "direction": direction,
              "source_domain": domains["source"], "target_domain": domains["target"],
              "source_normalisation": domains["source_normalisation"].as_dict(),
              "target_normalisation": domains["target_normalisation"].as_dict(),
              "input_scaling": loaded.scaling.as_dict(), "suv_factor": loaded.suv_factor, "output_units": units,
              "nonfinite_filled": int(loaded.nonfinite_filled), "intensity_check": report.as_dict(),
              "forced": bool(force)}
    return PreparedVolume(volume, work, loaded, record)


def translate_prepared(model, prepared: PreparedVolume, direction: str, *, batch_size: int = 16,
                       progress: Progress | None = None) -> Volume:
    """Run the model over a :class:`PreparedVolume`; the result is on the original grid, in output units."""
    domains = direction_domains(model.manifest, direction)
    scaling, _, fill_normalised, fill = _output_mapping(model.manifest, direction, prepared.loaded)
    translated = translate_slices(model, volumes.axial_slices(prepared.work), direction, batch_size=batch_size,
                                  progress=progress, source_fill=prepared.loaded.background,
                                  target_fill=fill_normalised)
    target_modality = volumes.DICOM_MODALITY_CODES.get(volumes.modality_kind(domains["target"]) or "", "")
    result = volumes.volume_from_axial_slices(scaling.inverse(translated), prepared.work, modality=target_modality)
    original = prepared.original
    back = volumes.resample_to_grid(result, original.shape, original.affine, cval=fill)
    return Volume(back.data, original.affine, target_modality,
                  f"{model.manifest.get('model', 'model')} {direction} of {original.source}")


def translate_volume_report(model, volume: Volume, direction: str, *, path=None, suv_factor: float | None = None,
                            force: bool = False, fill_nonfinite: bool = False, batch_size: int = 16,
                            progress: Progress | None = None) -> tuple[Volume, dict]:
    """Translate a whole volume onto its own grid (same shape and affine) in the target's output units, and a
    record of what was done (normalisations, SUV factor, filled voxels, intensity check)."""
    prepared = prepare_volume(model.manifest, volume, direction, path=path, suv_factor=suv_factor, force=force,
                              fill_nonfinite=fill_nonfinite)
    return translate_prepared(model, prepared, direction, batch_size=batch_size, progress=progress), prepared.record


def translate_volume(model, volume: Volume, direction: str, **options) -> Volume:
    """:func:`translate_volume_report` without the record."""
    return translate_volume_report(model, volume, direction, **options)[0]


def read_prepared(manifest: dict, input_path: str, direction: str, **options) -> PreparedVolume:
    """Read a NIfTI file or DICOM series, check its modality against the model and prepare it."""
    volume = volumes.read_volume(input_path)
    check_input_modality(volume, manifest, direction, input_path)
    prepared = prepare_volume(manifest, volume, direction, path=input_path, **options)
    prepared.record["input"] = os.path.abspath(input_path)
    return prepared


def write_translation(result: Volume, record: dict, output_path: str, description: str, overwrite: bool) -> str:
    """The output NIfTI and its JSON sidecar."""
    written = volumes.write_nifti(result, output_path, description=description, overwrite=overwrite)
    write_sidecar(record, output_path, overwrite=overwrite)
    return written


def check_input_modality(volume, manifest: dict, direction: str, path: str) -> None:
    """Refuse a DICOM series (a Volume or Geometry) of another modality than the model's source domain."""
    domains = direction_domains(manifest, direction)
    expected = volumes.modality_kind(domains["source"])
    actual = volumes.modality_kind(volume.modality) if volume.modality else None
    if expected and actual and expected != actual:
        raise TranslateError(f"{path} is a {volume.modality} series but the model's {direction} source "
                             f"domain is {domains['source']} (wrong --direction?)")


def write_sidecar(record: dict, output_path, overwrite: bool = False) -> str:
    """Write ``record`` as the output's JSON sidecar (``out.json`` beside ``out.nii.gz``)."""
    path = sidecar_path(output_path)
    if os.path.exists(path) and not overwrite:
        raise TranslateError(f"{path} already exists (use --overwrite to replace it)")
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


class Translator:
    """An exported model of one direction, applied in physical units with the CLI's checks."""

    def __init__(self, model, direction: str = "a2b", batch_size: int = 16, run_name: str = ""):
        _check_direction(model, direction)
        self.model, self.direction, self.batch_size = model, direction, int(batch_size)
        self.run_name = run_name
        self.domains = direction_domains(model.manifest, direction)

    @classmethod
    def load(cls, run_dir, direction: str = "a2b", batch_size: int = 16) -> "Translator":
        """Load ``run_dir/export/<direction>`` (raises ExportError when there is no usable export)."""
        from cycle_medgan_tf.export import load_translator

        return cls(load_translator(run_dir, direction, batch_size=batch_size), direction, batch_size,
                   os.path.basename(os.path.normpath(os.fspath(run_dir))))

    @property
    def manifest(self) -> dict:
        return self.model.manifest

    @property
    def pixel_spacing_mm(self) -> float:
        return model_spacing(self.manifest)

    def __call__(self, slices, *, suv_factor: float | None = None, force: bool = False,
                 fill_nonfinite: bool = False) -> np.ndarray:
        """Translate (H, W) or (N, H, W) slices in the source domain's physical units (SUV for an SUV model,
        unless ``suv_factor`` converts them), at the model's pixel spacing, into the target's output units.
        A per-volume normalisation takes its statistics from all the slices given."""
        array = np.asarray(slices, dtype=np.float32)
        if array.ndim not in (2, 3):
            raise TranslateError(f"expected (H, W) or (N, H, W) slices, got shape {array.shape}")
        stack = array[None] if array.ndim == 2 else array
        loaded = normalise_volume(Volume(stack, np.eye(4), source="slices"), self.domains["source_normalisation"],
                                  self.domains["source"], suv_factor=suv_factor, fill_nonfinite=fill_nonfinite)
        _checked(self.manifest, self.direction, loaded.volume.data, "slices", force)
        scaling, _, fill_normalised, _ = _output_mapping(self.manifest, self.direction, loaded)
        out = translate_slices(self.model, loaded.volume.data, self.direction, batch_size=self.batch_size,
                               source_fill=loaded.background, target_fill=fill_normalised)
        out = scaling.inverse(out)
        return out[0] if array.ndim == 2 else out

    def translate_volume(self, input_path, output_path, *, suv_factor: float | None = None, force: bool = False,
                         fill_nonfinite: bool = False, overwrite: bool = False,
                         progress: Progress | None = None) -> str:
        """Translate a NIfTI file or DICOM series into a NIfTI volume on the input's grid, with a JSON sidecar
        (``out.json``) recording units, normalisation, SUV factor, filled voxels and the intensity check."""
        input_path, output_path = os.fspath(input_path), os.fspath(output_path)
        check_output_paths(output_path, overwrite)
        prepared = read_prepared(self.manifest, input_path, self.direction, suv_factor=suv_factor, force=force,
                                 fill_nonfinite=fill_nonfinite)
        return self.write(prepared, output_path, overwrite=overwrite, progress=progress)

    def write(self, prepared: PreparedVolume, output_path: str, *, overwrite: bool = False,
              progress: Progress | None = None) -> str:
        """Translate a :class:`PreparedVolume` and write the NIfTI output with its sidecar."""
        result = translate_prepared(self.model, prepared, self.direction, batch_size=self.batch_size,
                                    progress=progress)
        return write_translation(result, prepared.record, output_path, self.description(), overwrite)

    def description(self) -> str:
        """A short provenance text for output headers."""
        m = self.manifest
        return (f"cycle-medgan-tf {m['model']} {self.domains['source']}->{self.domains['target']} {m['task']} "
                f"{self.run_name}").strip()


def check_output_paths(output_path: str, overwrite: bool) -> None:
    """A volume output must be .nii/.nii.gz, and neither it nor its sidecar may exist unless ``overwrite``."""
    if not volumes.is_nifti_path(output_path):
        raise TranslateError(f"{output_path}: output of a volume translation must end in .nii or .nii.gz")
    for path in (output_path, sidecar_path(output_path)):
        if os.path.exists(path) and not overwrite:
            raise TranslateError(f"{path} already exists (use --overwrite to replace it)")


__all__ = ["Translator", "TranslateError", "VolumeError", "translate_slices", "translate_volume",
           "translate_volume_report", "direction_domains", "model_spacing"]
