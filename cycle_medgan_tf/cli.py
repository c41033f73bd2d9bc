"""Shared command-line plumbing: every :class:`TrainConfig` field becomes an absl flag, and user errors end with
one clear line on stderr and exit code 2."""

from __future__ import annotations

import dataclasses
import sys

from absl import flags

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.config import FLAG_HELP, PROFILE_NAMES, TrainConfig, resolve_config

FLAGS = flags.FLAGS
_SKIP = {"model", "profile", "data", "workdir", "precision_probe"}   # precision_probe: a record, not a setting


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_app(main, errors: tuple = ()) -> None:
    """``absl.app.run(main)`` where bad flags and the given error types print one line ``error: ...`` on stderr
    and exit with status 2 (absl alone exits 1 on a flag error)."""
    from absl import app

    def one_line(message) -> None:
        fail(" ".join(str(message).split()))

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as exc:
            one_line(exc)

    def guarded(argv):
        if len(argv) > 1:
            one_line(f"unexpected arguments {argv[1:]}")
        try:
            return main(argv)
        except errors as exc:
            one_line(exc)

    _list_command_flags_in_help()
    app.run(guarded, flags_parser=parse)


def _list_command_flags_in_help() -> None:
    """Make the flags this package defined key flags of the main module, so that ``--help`` lists them also when
    the command runs through a shim (``python -m cycle_medgan_tf.train`` runs ``commands/train.py``)."""
    main_module = sys.argv[0]
    for module, module_flags in FLAGS.flags_by_module_dict().items():
        if module != main_module and module.startswith("cycle_medgan_tf."):
            for flag in module_flags:
                FLAGS.register_key_flag_for_module(main_module, flag)


def _setting_fields(models) -> list:
    """The configuration fields that are flags: TrainConfig's and the settings blocks of ``models``."""
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in _SKIP and f.name != "settings"]
    return fields + catalogue.setting_fields(models)


def _help(name: str, models) -> str:
    owners = [m for m in catalogue.families_with(name) if m in models]
    owner = f" ({', '.join(owners)})" if owners and len(owners) < len(models) else ""
    return FLAG_HELP.get(name, f"Override {name}{owner} (default from the model and profile).")


def define_training_flags(models: tuple[str, ...], default_model: str) -> None:
    """Define --model/--data/--workdir/--profile/--overwrite and one flag per configuration field of ``models``
    (TrainConfig's and their settings blocks')."""
    flags.DEFINE_enum("model", default_model, list(models), "Which model to train.")
    flags.DEFINE_string("data", None, "HDF5 slice store (format v1).")
    flags.DEFINE_string("workdir", None, "Run directory (created; an existing run with the same config resumes).")
    flags.DEFINE_enum("profile", "quick", list(PROFILE_NAMES), "Settings profile: smoke (tests), quick (CPU), paper.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing run directory with a different configuration.")
    for field in _setting_fields(models):
        help_text = _help(field.name, models)
        if field.type in ("int", int):
            flags.DEFINE_integer(field.name, None, help_text)
        elif field.type in ("float", float):
            flags.DEFINE_float(field.name, None, help_text)
        elif field.type in ("bool", bool):
            flags.DEFINE_bool(field.name, None, help_text)
        elif field.type in ("list", list):
            flags.DEFINE_list(field.name, None, help_text + " Comma-separated numbers.")
        else:
            flags.DEFINE_string(field.name, None, help_text)


def config_from_flags() -> TrainConfig:
    """Resolve the effective configuration from the parsed flags (exits 2 on a bad value)."""
    if not FLAGS.data:
        fail("--data is required (an HDF5 slice store; see README 'Data format')")
    if not FLAGS.workdir:
        fail("--workdir is required")
    overrides = {"data": FLAGS.data, "workdir": FLAGS.workdir}
    for field in _setting_fields(FLAGS["model"].parser.enum_values):
        if FLAGS[field.name].value is None:
            continue
        value = FLAGS[field.name].value
        if field.type in ("list", list):
            try:
                value = [float(v) for v in value]
            except ValueError:
                fail(f"--{field.name} must be comma-separated numbers, got {','.join(value)}")
        overrides[field.name] = value
    try:
        return resolve_config(FLAGS.model, FLAGS.profile, overrides)
    except ValueError as exc:
        fail(str(exc))
