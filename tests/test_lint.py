"""The repository passes its lint configuration (ruff.toml: pycodestyle errors and warnings, pyflakes)."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff() -> list[str]:
    """The ruff command of this environment (installed with the package's test extras)."""
    local = os.path.join(os.path.dirname(sys.executable), "ruff")
    if os.path.exists(local):
        return [local]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.fail("ruff is not installed: pip install -e '.[test]'")


def test_ruff_finds_nothing():
    result = subprocess.run([*_ruff(), "check", "--no-cache", REPO], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_would_catch_an_unused_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    result = subprocess.run([*_ruff(), "check", "--no-cache", "--config", os.path.join(REPO, "ruff.toml"), str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "F401" in result.stdout
