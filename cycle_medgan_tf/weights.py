"""Checksummed weight files: where shipped weights live and how every weight file is verified before it is read
(SHA-256 first, then ``np.load(..., allow_pickle=False)``; nothing is ever unpickled)."""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np


class WeightsError(Exception):
    """A weight file is missing, corrupt or of the wrong kind; the message is meant for the user."""


def checkpoints_dir() -> str:
    """The repository's ``checkpoints/`` folder (override with ``CYCLE_MEDGAN_CHECKPOINTS``)."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")
    return os.environ.get("CYCLE_MEDGAN_CHECKPOINTS", default)


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_npz(path: str, expected_sha256: str | None) -> dict:
    """Load a NumPy archive after checking its SHA-256 (``None``: read it from ``path + '.sha256'``)."""
    if not os.path.isfile(path):
        raise WeightsError(f"weight file {path} not found")
    if expected_sha256 is None:
        sidecar = path + ".sha256"
        if not os.path.isfile(sidecar):
            raise WeightsError(f"{path} has no checksum file {sidecar}; cannot verify it")
        with open(sidecar) as f:
            words = f.read().split()
        expected_sha256 = words[0] if words else ""
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise WeightsError(f"{path} is corrupt or not the expected file: SHA-256 {actual[:16]}... "
                           f"!= expected {expected_sha256[:16]}...")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
