"""A domain's intensity window: physical units -> the model's range [-1, 1], linear or piecewise linear.

A :class:`Window` is the pair ``(lo, hi)`` (it *is* a tuple, so ``lo, hi = window`` works everywhere) plus an
optional **transfer**: interior knots ``(value, level)`` with ``lo < value_1 < ... < hi`` mapped to
``-1 < level_1 < ... < 1``, joined by straight lines. With no knots the map is the plain linear window. A transfer
gives a band of intensities more of the model's range: for CT, ``-200:-0.6,300:0.6`` spends 60% of [-1, 1] on
-200..300 HU (soft tissue: 0.24 per 100 HU, 3.6 times the 0.067 of the linear [-1000, 2000] window) and keeps air
and bone in the outer 20% each, so the networks see grey/white-matter contrast (15 HU) as 0.036 of the range
instead of 0.010 (benchmarks/RESULTS.md, "Why is the translated brain noise?").

Images stay in physical units on disk; the window decides only what the networks see. Table I's four metrics are
computed on the linear window ``(lo, hi)`` whatever the transfer (:func:`linear_model_range`), so tables of runs
with and without a transfer compare like with like.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class WindowError(ValueError):
    """A window or transfer specification that cannot be used; the message is one line for the user."""


class Window(tuple):
    """``(lo, hi)`` with an optional transfer (``knots``: interior values, ``levels``: their model levels)."""

    def __new__(cls, lo: float, hi: float, knots: Sequence[float] = (), levels: Sequence[float] = ()):
        self = super().__new__(cls, (float(lo), float(hi)))
        self.knots = tuple(float(v) for v in knots)
        self.levels = tuple(float(v) for v in levels)
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.knots, self.levels)

    @property
    def linear(self) -> bool:
        return not self.knots

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """All knots including the ends, as (physical values, model levels)."""
        return (np.array([self[0], *self.knots, self[1]], dtype=np.float64),
                np.array([-1.0, *self.levels, 1.0], dtype=np.float64))

    def transfer_array(self) -> np.ndarray:
        """The interior knots as a (2, K) array (row 0 values, row 1 levels): the store's ``transfer`` attribute."""
        return np.array([self.knots, self.levels], dtype=np.float64).reshape(2, -1)

    def record(self) -> dict:
        """JSON-ready description (manifests, conventions)."""
        out = {"window": [self[0], self[1]]}
        if not self.linear:
            out["transfer"] = [[v, lv] for v, lv in zip(self.knots, self.levels)]
        return out

    def same_as(self, other, tol: float = 1e-6) -> bool:
        """Whether ``other`` (a Window or a plain pair) maps intensities the same way."""
        other = as_window(other)
        return (np.allclose(self, other, rtol=tol, atol=tol) and len(self.knots) == len(other.knots)
                and np.allclose(self.transfer_array(), other.transfer_array(), rtol=tol, atol=tol))

    def __repr__(self):
        transfer = "" if self.linear else f", transfer={self.record()['transfer']}"
        return f"Window({self[0]:g}, {self[1]:g}{transfer})"


def as_window(window, transfer=None) -> Window:
    """A :class:`Window` from a Window, a pair ``(lo, hi)``, and optionally a (2, K) transfer array (validated)."""
    if isinstance(window, Window) and transfer is None:
        return window
    try:
        lo, hi = float(window[0]), float(window[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise WindowError(f"a window must be a pair (lo, hi) of numbers, got {window!r}") from exc
    if transfer is None:
        knots, levels = (window.knots, window.levels) if isinstance(window, Window) else ((), ())
    else:
        try:
            array = np.asarray(transfer, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise WindowError(f"a transfer must be numeric, got {transfer!r}") from exc
        if array.ndim != 2 or array.shape[0] != 2:
            raise WindowError(f"a transfer must be a (2, K) array of values and levels, got shape {array.shape}")
        knots, levels = array[0], array[1]
    check_transfer(lo, hi, knots, levels)
    return Window(lo, hi, knots, levels)


def check_transfer(lo: float, hi: float, knots, levels) -> None:
    """Refuse knots outside (lo, hi) or not increasing, and levels outside (-1, 1) or not increasing."""
    values = np.array([lo, *knots, hi], dtype=np.float64)
    model = np.array([-1.0, *levels, 1.0], dtype=np.float64)
    if len(knots) != len(levels):
        raise WindowError(f"a transfer needs one level per knot, got {len(knots)} knots and {len(levels)} levels")
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(model))):
        raise WindowError("a transfer's knots and levels must be finite")
    if np.any(np.diff(values) <= 0):
        raise WindowError(f"transfer knots must increase strictly inside the window ({lo:g}, {hi:g}), "
                          f"got {list(map(float, knots))}")
    if np.any(np.diff(model) <= 0):
        raise WindowError(f"transfer levels must increase strictly inside (-1, 1), got {list(map(float, levels))}")


def parse_transfer(text: str, window) -> Window:
    """``"VALUE:LEVEL,VALUE:LEVEL"`` (e.g. ``"-200:-0.6,300:0.6"``) on ``window``; ``""`` keeps it linear."""
    if not text.strip():
        return as_window(window)
    try:
        pairs = [tuple(float(v) for v in item.split(":")) for item in text.split(",")]
    except ValueError as exc:
        raise WindowError(f"transfer {text!r}: expected VALUE:LEVEL pairs separated by commas") from exc
    if any(len(p) != 2 for p in pairs):
        raise WindowError(f"transfer {text!r}: expected VALUE:LEVEL pairs separated by commas")
    return as_window(window, np.array(pairs, dtype=np.float64).T)


def parse_band(text: str) -> tuple[float, float] | None:
    """``"LO:HI"`` (physical units, ``LO < HI``) as a pair; ``""`` means none. :class:`WindowError` otherwise."""
    if not text.strip():
        return None
    try:
        lo, hi = map(float, text.split(":"))          # ValueError: not two parts, or not numbers
    except ValueError:
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise WindowError(f"{text!r}: expected LO:HI, two numbers with LO < HI (e.g. 0:80)")
    return lo, hi


def band_levels(band: tuple[float, float], window, what: str = "band") -> tuple[float, float]:
    """The model levels of a physical band ``(lo, hi)`` that must lie inside ``window`` (else :class:`WindowError`
    naming ``what``): where a narrow view of the model's images begins and ends."""
    window = as_window(window)
    if not window[0] <= band[0] < band[1] <= window[1]:
        raise WindowError(f"{what} {band[0]:g}:{band[1]:g} is not inside the domain's window "
                          f"[{window[0]:g}, {window[1]:g}] (give it in the store's physical units)")
    low, high = to_model(np.array(band), window)
    return float(low), float(high)


def to_model(images, window) -> np.ndarray:
    """Physical units -> [-1, 1] through ``window`` (clipped outside it); float32."""
    window = as_window(window)
    lo, hi = window
    if window.linear:
        scaled = (np.asarray(images, dtype=np.float32) - lo) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)
        return np.clip(scaled, -1.0, 1.0).astype(np.float32, copy=False)
    values, levels = window.points()
    return np.interp(np.asarray(images, dtype=np.float64), values, levels).astype(np.float32)


def from_model(x, window) -> np.ndarray:
    """[-1, 1] -> physical units through ``window`` (the inverse of :func:`to_model` inside the window); float32."""
    window = as_window(window)
    lo, hi = window
    if window.linear:
        return ((np.asarray(x, dtype=np.float32) + np.float32(1.0)) * np.float32((hi - lo) / 2.0) + np.float32(lo))
    values, levels = window.points()
    return np.interp(np.asarray(x, dtype=np.float64), levels, values).astype(np.float32)


def linear_model_range(x, window) -> np.ndarray:
    """Model-range images re-expressed on the linear window ``(lo, hi)`` (unchanged when ``window`` is linear)."""
    window = as_window(window)
    if window.linear:
        return np.asarray(x)
    return to_model(from_model(x, window), (window[0], window[1]))


def manifest_entries(letter: str, window) -> dict:
    """Export-manifest entries of domain ``letter`` ("a"/"b"): ``window_X`` and, only with a transfer,
    ``transfer_X`` (the (2, K) knots as nested lists), so manifests of linear windows are unchanged."""
    window = as_window(window)
    out = {f"window_{letter}": [window[0], window[1]]}
    if not window.linear:
        out[f"transfer_{letter}"] = window.transfer_array().tolist()
    return out


def manifest_window(manifest: dict, letter: str) -> Window:
    """The :class:`Window` of domain ``letter`` recorded in an export manifest (raises :class:`WindowError`)."""
    return as_window(manifest[f"window_{letter}"], manifest.get(f"transfer_{letter}"))
