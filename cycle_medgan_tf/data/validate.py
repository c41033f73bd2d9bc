"""Validator command line for format-v1 slice stores:

    python -m cycle_medgan_tf.data.validate FILE

Exit 0 with a one-line summary for a valid store; exit 2 with one line per problem otherwise. The checks are in
data/checks.py (``validate_store`` is importable from here too).
"""

from __future__ import annotations

import sys

from cycle_medgan_tf.data.checks import validate_store
from cycle_medgan_tf.data.store import open_store

__all__ = ["validate_store", "main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: validate one store, print a summary or the problems."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m cycle_medgan_tf.data.validate FILE", file=sys.stderr)
        return 2
    path = args[0]
    problems = validate_store(path)
    if problems:
        for problem in problems:
            print(f"invalid: {problem}", file=sys.stderr)
        return 2
    with open_store(path, validate=False) as store:
        print(f"valid: {store.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
