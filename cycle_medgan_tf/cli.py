"""Shared command-line plumbing: every :class:`TrainConfig` field becomes an absl flag, and user errors end with
one clear line on stderr and exit code 2."""

from __future__ import annotations

import dataclasses
import sys

from absl import flags

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

    app.run(guarded, flags_parser=parse)


def define_training_flags(models: tuple[str, ...], default_model: str) -> None:
    """Define --model/--data/--workdir/--profile/--overwrite and one flag per configuration field."""
    flags.DEFINE_enum("model", default_model, list(models), "Which model to train.")
    flags.DEFINE_string("data", None, "HDF5 slice store (format v1).")
    flags.DEFINE_string("workdir", None, "Run directory (created; an existing run with the same config resumes).")
    flags.DEFINE_enum("profile", "quick", list(PROFILE_NAMES), "Settings profile: smoke (tests), quick (CPU), paper.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing run directory with a different configuration.")
    for field in dataclasses.fields(TrainConfig):
        if field.name in _SKIP:
            continue
        help_text = FLAG_HELP.get(field.name, f"Override {field.name} (default from the model and profile).")
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
    for field in dataclasses.fields(TrainConfig):
        if field.name in _SKIP or FLAGS[field.name].value is None:
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
