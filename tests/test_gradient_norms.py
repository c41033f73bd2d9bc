"""Per-term generator-gradient norms (``--gradient_every``): Cycle-MedGAN reports every weighted term, finite and
positive, measuring changes nothing, each term carries its weight and a zero-weight term is left out, a model that
cannot report them is refused in one line, and an older config.json reads as "off". (That a run with them trains
bit-identically and resumes without repeating a record is tested with the learning curves, tests/test_curves.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from cycle_medgan_tf.catalogue import trainer_class
from cycle_medgan_tf.config import current_layout, resolve_config
from cycle_medgan_tf.data.pipeline import train_dataset
from cycle_medgan_tf.training.rundir import TrainingError
from cycle_medgan_tf.training.trainer import DataInfo, run_training


def _trainer(store, tmp_path, **overrides):
    cfg = resolve_config("cycle_medgan", "smoke", dict(data=store, workdir=str(tmp_path / "unused"), **overrides))
    return trainer_class("cycle_medgan")(cfg, DataInfo.from_store(store))


def test_every_weighted_term_is_reported_and_nothing_changes(phantom_store, tmp_path):
    a, b = next(iter(train_dataset(phantom_store, 64, 1, seed=0)))
    trainer = _trainer(phantom_store, tmp_path, lambda_identity=0.5)
    before = [v.numpy().copy() for v in trainer.generator_vars]
    norms = {k: float(v) for k, v in trainer.gradient_norms(a, b).items()}
    assert set(norms) == {"adversarial", "cycle", "identity", "cycle_perceptual", "cycle_style", "total"}
    assert all(np.isfinite(v) and v > 0 for v in norms.values()), norms
    assert norms["total"] <= sum(v for k, v in norms.items() if k != "total") * (1 + 1e-5)   # triangle inequality
    assert all(np.array_equal(x, v.numpy()) for x, v in zip(before, trainer.generator_vars))   # nothing changed


def test_the_terms_carry_their_weights_and_zero_weights_are_left_out(phantom_store):
    losses_ = dict(g_adv_a2b=1.0, g_adv_b2a=2.0, cycle=3.0, identity=4.0, cycle_perceptual=5.0, cycle_style=6.0)
    cfg = resolve_config("cycle_medgan", "smoke", dict(lambda_cycle=10.0, lambda_cp=0.5, lambda_cs=0.0,
                                                       lambda_identity=2.0))
    trainer = object.__new__(trainer_class("cycle_medgan"))       # weighted_terms reads only the configuration
    trainer.cfg = cfg
    assert trainer.weighted_terms(losses_) == dict(adversarial=3.0, cycle=30.0, identity=8.0, cycle_perceptual=2.5)


def test_a_model_without_them_is_refused_and_old_records_read_as_off(phantom_store, tmp_path):
    cfg = resolve_config("unit", "smoke", dict(data=phantom_store, workdir=str(tmp_path / "run"), gradient_every=1))
    with pytest.raises(TrainingError, match="--gradient_every: unit does not report per-term gradient norms"):
        run_training(trainer_class("unit"), cfg, log=lambda m: None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="gradient_every must be >= 0"):
        resolve_config("cyclegan", "smoke", dict(gradient_every=-1))
    record = resolve_config("cyclegan", "smoke").to_dict()
    del record["gradient_every"]                          # a config.json written before the field existed
    assert current_layout(record) == resolve_config("cyclegan", "smoke").to_dict()
