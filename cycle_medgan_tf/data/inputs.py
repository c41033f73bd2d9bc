"""Input lists of prepare: list files, comma-separated paths, folders and globs.

A LIST value is a text file with one entry per line (blank lines and ``#`` comments ignored; relative entries
are looked up beside the list file, then in the working directory) or a comma-separated list of entries. An
entry is a NIfTI file or DICOM series directory, a folder of volumes (its ``.nii``/``.nii.gz`` files and its
subdirectories, each a DICOM series; hidden names and other files such as JSON sidecars are skipped) or a glob
pattern (``data/pet/*.nii.gz``). Folders and globs are expanded in sorted order, and each expansion is reported.

Validation pairs are ``pathA,pathB`` lines, an inline ``a1,b1,a2,b2,...`` list, or two folders/globs
``DIR_A,DIR_B`` whose volumes are paired by subject key (:func:`identity.subject_key`).
"""

from __future__ import annotations

import glob
import os
from typing import Callable

from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.identity import subject_id, subject_key

Report = Callable[[str], None]
_GLOB_CHARS = set("*?[")


class PrepareError(Exception):
    """Bad input for store preparation; the message is meant for the user."""


def _exists(path: str) -> bool:
    return os.path.exists(path) or bool(_GLOB_CHARS & set(path) and glob.glob(path))


def _resolve(entry: str, base: str | None) -> str:
    entry = os.path.expanduser(entry.strip())
    if base is not None and not os.path.isabs(entry):
        beside = os.path.join(base, entry)
        if _exists(beside) or not _exists(entry):
            return beside
    return entry


def _list_entries(value: str, flag: str) -> tuple[list[str], str | None]:
    value = value.strip()
    if os.path.isfile(value) and not volumes.is_nifti_path(value):
        try:
            with open(value, encoding="utf-8") as f:
                lines = [line.split("#", 1)[0].strip() for line in f]
        except (OSError, UnicodeDecodeError) as exc:
            raise PrepareError(f"--{flag}: cannot read list file {value} ({exc})") from exc
        return [line for line in lines if line], os.path.dirname(os.path.abspath(value))
    return [v for v in (part.strip() for part in value.split(",")) if v], None


def _is_volume(path: str) -> bool:
    return os.path.isdir(path) or volumes.is_nifti_path(path)


def is_volume_folder(path: str) -> bool:
    """A directory holding NIfTI files or subdirectories (not itself a DICOM series)."""
    if not os.path.isdir(path):
        return False
    return any(not n.startswith(".") and (volumes.is_nifti_path(n) or os.path.isdir(os.path.join(path, n)))
               for n in os.listdir(path))


def is_collection(entry: str) -> bool:
    """A folder of volumes or a glob pattern that matches no existing path literally."""
    return is_volume_folder(entry) or (not os.path.exists(entry) and bool(_GLOB_CHARS & set(entry)))


def expand_entry(entry: str, flag: str, report: Report | None = None) -> list[str]:
    """The volumes an entry names: itself, or a folder's / glob's volumes in sorted order."""
    if not is_collection(entry):
        return [entry]
    if os.path.isdir(entry):
        names = sorted(n for n in os.listdir(entry) if not n.startswith("."))
        found = [os.path.join(entry, n) for n in names if _is_volume(os.path.join(entry, n))]
        what = "folder"
    else:
        found = sorted(p for p in glob.glob(entry) if _is_volume(p) and not os.path.basename(p).startswith("."))
        what = "glob"
    if not found:
        raise PrepareError(f"--{flag}: {what} {entry} holds no NIfTI files or DICOM series directories")
    if report is not None:
        shown = ", ".join(subject_id(p) for p in found[:8]) + (", ..." if len(found) > 8 else "")
        report(f"--{flag}: {len(found)} volumes from {what} {entry} (sorted): {shown}")
    return found


def read_path_list(value: str, flag: str, report: Report | None = None) -> list[str]:
    """Paths named by a LIST flag value (a list file or a comma-separated list; folders and globs expanded)."""
    entries, base = _list_entries(value, flag)
    if not entries:
        raise PrepareError(f"--{flag}: no paths given")
    return [path for e in entries for path in expand_entry(_resolve(e, base), flag, report)]


def pair_by_subject(paths_a: list[str], paths_b: list[str], flag: str) -> list[tuple[str, str]]:
    """Pair two lists of volumes by subject key; every key must occur exactly once on each side."""
    sides = []
    for paths, side in ((paths_a, "A"), (paths_b, "B")):
        keys: dict[str, str] = {}
        for path in paths:
            key = subject_key(subject_id(path))
            if key in keys:
                raise PrepareError(f"--{flag}: side {side} has two volumes of subject {key!r} "
                                     f"({keys[key]}, {path}); pair them in a list file")
            keys[key] = path
        sides.append(keys)
    unmatched = sorted(set(sides[0]) ^ set(sides[1]))
    if unmatched:
        raise PrepareError(f"--{flag}: subjects {unmatched[:5]} are on one side only; volumes are paired by "
                             f"subject (name without modality words), or list the pairs in a file")
    return [(sides[0][k], sides[1][k]) for k in sorted(sides[0])]


def read_pair_list(value: str, flag: str, report: Report | None = None) -> list[tuple[str, str]]:
    """(pathA, pathB) pairs from a list file of ``pathA,pathB`` lines, an inline ``a1,b1,a2,b2`` list or two
    folders/globs paired by subject."""
    entries, base = _list_entries(value, flag)
    if base is None and len(entries) == 2 and all(is_collection(_resolve(e, None)) for e in entries):
        a, b = (expand_entry(e, flag, report) for e in entries)
        return pair_by_subject(a, b, flag)
    if base is None:
        if len(entries) % 2:
            raise PrepareError(f"--{flag}: expected pathA,pathB pairs, got an odd number of paths ({len(entries)})")
        pairs = list(zip(entries[0::2], entries[1::2]))
    else:
        pairs = []
        for line in entries:
            parts = [p.strip() for p in line.replace("\t", ",").split(",") if p.strip()]
            if len(parts) != 2:
                raise PrepareError(f"--{flag}: line {line!r} is not of the form pathA,pathB")
            pairs.append((parts[0], parts[1]))
    if not pairs:
        raise PrepareError(f"--{flag}: no pairs given")
    return [(_resolve(a, base), _resolve(b, base)) for a, b in pairs]
