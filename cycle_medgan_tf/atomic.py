"""Atomic writes of files and directories: the output is written under a temporary sibling name, then renamed onto
its path, so a reader or a crash never sees it half written. :func:`atomic_path` is the one implementation; the
other helpers are its common uses."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from typing import Iterator

_serial = itertools.count()      # temporary names unique within a process (threads included)


def _sibling(path: str, tag: str, suffix: str = "") -> str:
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{next(_serial)}{suffix}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _replace(tmp: str, path: str) -> None:
    """Rename ``tmp`` onto ``path``; a directory already at ``path`` is renamed aside first and removed after."""
    if not (os.path.isdir(path) and not os.path.islink(path)):
        os.replace(tmp, path)
        return
    old = _sibling(path, "old")
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(old, path)       # put the previous one back
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path, *, directory: bool = False, suffix: str = "") -> Iterator[str]:
    """Yield a temporary sibling of ``path`` to write to: a file name (nothing there yet), or with ``directory`` an
    empty directory made for it (the parent must exist). When the block ends normally it is renamed onto ``path``
    (replacing a file or directory there); when it raises, it is removed and ``path`` is left as it was.
    ``suffix`` ends the temporary name, for writers that choose the format from it (``.nii.gz``, ``.png``,
    ``.npz``)."""
    path = os.path.abspath(os.fspath(path))
    tmp = _sibling(path, "tmp", suffix)
    if directory:
        os.makedirs(tmp)
    try:
        yield tmp
        _replace(tmp, path)
    finally:
        _remove(tmp)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_save_figure(fig, path, dpi: int) -> None:
    """Save a Matplotlib figure as PNG at ``path`` atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi)
