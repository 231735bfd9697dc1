"""The dependency rule of DESIGN §2 is enforced: a forbidden import makes lint-imports fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "leases", "provisioners", "workflows", "bot", "gpulease", "sandbox")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(dest: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.yaml")
        )
    shutil.copy(ROOT / ".importlinter", dest / ".importlinter")


def _lint(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(where / ".importlinter"), "--no-cache"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("layers")
    _copy_tree(dest)
    return dest


def test_the_real_tree_keeps_the_rule(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("importer", "line", "contract"),
    [
        ("config/_bad.py", "import leases.errors\n", "config imports nothing internal"),
        ("leases/_bad.py", "import provisioners\n", "leases imports only config"),
        ("workflows/_bad.py", "import bot\n", "workflows never imports bot"),
        ("bot/_bad.py", "import provisioners\n", "bot imports workflows.api, leases and config only"),
        ("sandbox/_bad.py", "import config.policy\n", "sandbox stands for the outside world"),
        # The bot reaches workflows only through workflows.api.
        ("bot/_bad.py", "import workflows._inner\n", "bot imports workflows.api, leases and config only"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, importer, line, contract):
    _copy_tree(tmp_path)
    (tmp_path / "workflows" / "_inner.py").write_text("")
    (tmp_path / importer).write_text(line)
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert contract in result.stdout
    assert "BROKEN" in result.stdout
