"""The model-family catalogue and the configuration built from it: one list of families, settings blocks that are
validated per family, a frozen TrainConfig, the named learning-rate schedules, config.json records of the layout
before the settings blocks (they still resume), and commands kept apart from the library."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.config import MODELS, TrainConfig, current_layout, resolve_config
from tests.conftest import REPO

PACKAGE = pathlib.Path(REPO) / "cycle_medgan_tf"
OLD_LAYOUT = json.loads((pathlib.Path(REPO) / "tests" / "fixtures" / "old_layout_configs.json").read_text())


# ---- the catalogue ----------------------------------------------------------------------------------------------

def test_the_catalogue_lists_every_family_once_and_orders_table_one():
    assert catalogue.names() == ("unit", "cyclegan", "cycle_medgan", "bigan")
    assert MODELS == catalogue.translator_names() == ("unit", "cyclegan", "cycle_medgan")
    assert catalogue.display_names() == {"unit": "UNIT", "cyclegan": "CycleGAN", "cycle_medgan": "Cycle-MedGAN"}
    assert not catalogue.family("bigan").translator
    with pytest.raises(ValueError, match="unknown model 'pix2pix'; choose from unit, cyclegan"):
        catalogue.family("pix2pix")


def test_every_record_points_at_code_that_exists():
    for family in catalogue.FAMILIES:
        assert isinstance(family.trainer_class(), type), family.name
        for hook in (family.networks, family.flops, family.frozen_parts):
            assert hook is None or callable(catalogue.load(hook)), (family.name, hook)
        cfg = resolve_config(family.name, "smoke")
        assert type(cfg.settings) is family.settings and not cfg.settings.problems()


def test_core_modules_import_neither_baselines_nor_commands():
    """No module outside baselines/ imports baselines, and no library module imports a command (the shims at the
    old command paths import theirs only when run as ``__main__``)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "commands" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        guarded = {id(n) for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
                   for n in ast.walk(node)}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("baselines") or (name.startswith("cycle_medgan_tf.commands")
                                                    and id(node) not in guarded):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


def test_importing_config_and_the_catalogue_loads_no_tensorflow_or_baseline():
    code = ("import sys, cycle_medgan_tf.config, cycle_medgan_tf.cli, cycle_medgan_tf.commands.train; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'baselines') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_importing_a_command_registers_no_flag():
    from absl import flags

    import importlib

    before = set(flags.FLAGS)
    for path in sorted((PACKAGE / "commands").glob("*.py")) + sorted((PACKAGE / "bench").glob("*.py")):
        importlib.import_module(f"cycle_medgan_tf.{path.parent.name}.{path.stem}")
    assert set(flags.FLAGS) == before


# ---- settings blocks --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, overrides, message", [
    ("unit", dict(lambda_cp=1.0), "lambda_cp: not a setting of unit (only of cyclegan, cycle_medgan)"),
    ("cyclegan", dict(z_dim=8), "z_dim: not a setting of cyclegan (only of bigan)"),
    ("cyclegan", dict(lambda_cp=1.0), "the CycleGAN baseline has no cycle feature losses"),
    ("cycle_medgan", dict(lambda_cs=-1.0), "lambda_cs must be >= 0, got -1.0"),
    ("cycle_medgan", dict(style_layer_weights=[]), "style_layer_weights must be non-negative numbers"),
    ("cycle_medgan", dict(pool_size=-1), "pool_size must be >= 0, got -1"),
    ("unit", dict(unit_kl_weight=-0.5), "unit_kl_weight must be >= 0, got -0.5"),
    ("bigan", dict(z_dim=0), "z_dim must be >= 1, got 0"),
    ("unit", dict(bogus=1), "unknown settings ['bogus']"),
    ("unit", dict(lr_schedule="cosine"), "lr_schedule must be one of linear_decay, constant, got cosine"),
    ("unit", dict(decay_start=0.5), "decay_start=0.5 needs --lr_schedule=linear_decay (unit: constant)"),
])
def test_settings_are_checked_per_family(model, overrides, message):
    with pytest.raises(ValueError) as error:
        resolve_config(model, "smoke", overrides)
    assert message in str(error.value)


def test_family_defaults_profiles_and_flags_reach_the_settings_block():
    medgan = resolve_config("cycle_medgan", "quick", dict(lambda_cycle=5.0))
    assert (medgan.settings.lambda_cp, medgan.settings.lambda_cs, medgan.settings.lambda_cycle) == (1.8, 1.0, 5.0)
    assert medgan.settings.perceptual_layer_weights == [30.0, 18.0, 5.0, 1.0] and medgan.lr_schedule == "linear_decay"
    assert resolve_config("bigan", "quick").steps == 2000 and resolve_config("bigan", "smoke").steps == 4
    unit = resolve_config("unit", "smoke", dict(lr_schedule="linear_decay", decay_start=0.5))
    assert (unit.lr, unit.lr_schedule, unit.settings.unit_gan_weight) == (1e-4, "linear_decay", 10.0)
    flat = json.loads(unit.to_json())
    assert flat["unit_recon_weight"] == 100.0 and "settings" not in flat and "lambda_cp" not in flat


def test_train_config_is_frozen_and_replace_keeps_the_block_consistent():
    cfg = resolve_config("cyclegan", "smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 5
    assert dataclasses.replace(cfg, steps=5).steps == 5 and cfg.steps == 4
    with pytest.raises(ValueError, match="unit takes UNITSettings, not CycleGANSettings"):
        dataclasses.replace(cfg, model="unit")
    assert type(TrainConfig(model="bigan").settings) is catalogue.BiGANSettings


def test_the_named_schedules():
    from cycle_medgan_tf.training.schedule import make_schedule

    constant = make_schedule("constant", 1e-4, 100, 1.0)
    decay = make_schedule("linear_decay", 2e-4, 100, 0.5)
    assert [float(constant(s)) for s in (0, 50, 99)] == pytest.approx([1e-4] * 3)
    assert [float(decay(s)) for s in (0, 49, 75, 100)] == pytest.approx([2e-4, 2e-4, 1e-4, 0.0])
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        make_schedule("cosine", 1e-4, 100, 1.0)


# ---- config.json of the earlier layout --------------------------------------------------------------------------

@pytest.mark.parametrize("model", sorted(OLD_LAYOUT))
def test_an_old_flat_config_json_reads_as_the_same_run(model):
    """Records written before the settings blocks (every family's settings flat, no lr_schedule) are the run that
    today's configuration describes; a changed setting still differs."""
    assert current_layout(OLD_LAYOUT[model]) == resolve_config(model, "smoke").to_dict()
    changed = dict(OLD_LAYOUT[model], lr=1.0)
    assert current_layout(changed) != resolve_config(model, "smoke").to_dict()


def test_a_run_directory_with_an_old_config_json_is_accepted_for_resuming(tmp_path):
    """The work-directory check that every training start makes (``rundir.prepare_workdir``) accepts the old
    record as this run (and then rewrites it in today's layout) and still refuses a changed setting."""
    from cycle_medgan_tf.training.rundir import TrainingError, prepare_workdir

    cfg = resolve_config("cyclegan", "smoke", dict(data="store.h5", workdir=str(tmp_path / "run"), steps=2))
    old = dict(OLD_LAYOUT["cyclegan"], data=cfg.data, workdir=cfg.workdir, steps=2)
    os.makedirs(cfg.workdir)
    (tmp_path / "run" / "config.json").write_text(json.dumps(old))
    prepare_workdir(cfg, overwrite=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == cfg.to_dict()
    (tmp_path / "run" / "config.json").write_text(json.dumps(dict(old, lr=1.0)))
    with pytest.raises(TrainingError, match="differs in: lr"):
        prepare_workdir(cfg, overwrite=False)


@pytest.mark.parametrize("setting, other_value", [("lambda_identity", 5.0), ("disc_layers", 2),
                                                  ("lambda_structure", 5.0), ("upsample", "bilinear")])
def test_a_config_written_before_a_setting_existed_is_the_same_configuration(setting, other_value):
    """A setting added later is off (its faithful value) in every profile of both cycle models; a cycle-family
    record without it reads as today's default (so old run directories resume: tests/test_training.py); with
    another value it is another configuration; UNIT never has it."""
    from cycle_medgan_tf.config import ADDED_SETTINGS

    assert setting in ADDED_SETTINGS
    for model in ("cyclegan", "cycle_medgan"):
        for profile in ("smoke", "quick", "paper"):
            assert getattr(resolve_config(model, profile, {}).settings, setting) == ADDED_SETTINGS[setting]
        today = resolve_config(model, "smoke").to_dict()
        assert today[setting] == ADDED_SETTINGS[setting]
        before = {k: v for k, v in today.items() if k != setting}
        assert current_layout(before) == today
        assert current_layout(dict(before, **{setting: other_value})) != today
    unit = resolve_config("unit", "smoke").to_dict()
    assert setting not in unit and current_layout(unit) == unit
