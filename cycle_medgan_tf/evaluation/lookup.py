"""The input-blind "Look-up (best training slice)" reference row: an oracle upper bound on memorisation.

For every validation target, the prediction is the training slice of the target domain (train/B for a2b, train/A
for b2a) most similar to that target, chosen without looking at the input: the ``LOOKUP_CANDIDATES`` training
slices with the lowest mean squared error to the target in model range [-1, 1] are preselected (one matrix
product), and among them the one with the highest Table I SSIM is taken (ties: the lower MSE, then the lower
index). A translator that does not beat this row has learned nothing about its input that a look-up table of
training targets could not give.
"""

from __future__ import annotations

import numpy as np

from cycle_medgan_tf.evaluation.metrics import ssim

LOOKUP_ROW = "Look-up (best training slice)"
LOOKUP_CANDIDATES = 8
_TARGET_CHUNK = 32
LOOKUP_CONVENTION = (f"input-blind: for each validation target, of the {LOOKUP_CANDIDATES} training slices of the "
                     "target domain with the lowest MSE to it in model range, the one with the highest SSIM")


def best_training_slices(targets, training, candidates: int = LOOKUP_CANDIDATES) -> np.ndarray:
    """Index into ``training`` (K, H, W) of the best match of each of ``targets`` (M, H, W), both in [-1, 1]."""
    targets = np.asarray(targets, dtype=np.float32)
    training = np.asarray(training, dtype=np.float32)
    if targets.ndim != 3 or training.ndim != 3 or targets.shape[1:] != training.shape[1:]:
        raise ValueError(f"targets {targets.shape} and training slices {training.shape} must be (N, H, W) "
                         "of the same image size")
    if len(training) == 0:
        raise ValueError("no training slices to look up")
    flat_train = training.reshape(len(training), -1)
    train_sq = np.einsum("kp,kp->k", flat_train, flat_train, dtype=np.float64)
    keep = min(int(candidates), len(training))
    chosen = np.empty(len(targets), dtype=np.int64)
    for start in range(0, len(targets), _TARGET_CHUNK):
        block = targets[start:start + _TARGET_CHUNK]
        flat = block.reshape(len(block), -1)
        sq_dist = (np.einsum("mp,mp->m", flat, flat, dtype=np.float64)[:, None] + train_sq[None, :]
                   - 2.0 * (flat @ flat_train.T).astype(np.float64))
        near = np.argpartition(sq_dist, keep - 1, axis=1)[:, :keep]
        order = np.lexsort((near, np.take_along_axis(sq_dist, near, axis=1)), axis=1)
        near = np.take_along_axis(near, order, axis=1)               # by MSE, then index
        scores = ssim(np.repeat(block, keep, axis=0), training[near.ravel()]).reshape(len(block), keep)
        chosen[start:start + len(block)] = near[np.arange(len(block)), np.argmax(scores, axis=1)]
    return chosen


def lookup_prediction(targets, training, candidates: int = LOOKUP_CANDIDATES) -> np.ndarray:
    """The look-up row's prediction: the best-matching training slice for every target (model range)."""
    training = np.asarray(training, dtype=np.float32)
    return training[best_training_slices(targets, training, candidates)]


def lookup_prediction_in_units(targets, training, window) -> np.ndarray:
    """:func:`lookup_prediction` for targets and training slices in physical units (the store's values), matched in
    model range through ``window`` and returned in physical units."""
    from cycle_medgan_tf.data.store import from_model_range, to_model_range

    return from_model_range(lookup_prediction(to_model_range(targets, window), to_model_range(training, window)),
                            window)
