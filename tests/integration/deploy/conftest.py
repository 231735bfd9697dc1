"""Fixtures and helpers for the deployment tests: the manifests as `kubectl kustomize` renders
them (kubectl is the real client nobody here wrote), and the repository's paths.

Without kubectl on PATH the tests that render are skipped with the reason, except under
CI=true, where they fail: CI must not pass by skipping.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
# Every kustomization a person may render: the base and each overlay.
TARGETS = ("base", "overlays/staging", "overlays/production")
OVERLAYS = ("overlays/staging", "overlays/production")


@functools.cache
def _render(target: str) -> str:
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / target)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize deploy/{target} failed:\n{result.stderr}")
    return result.stdout


def rendered(target: str) -> str:
    """Return `kubectl kustomize deploy/<target>` output (skipped, or failed under CI, without kubectl)."""
    if shutil.which("kubectl") is None:
        message = "kubectl is not on PATH: cannot render the kustomizations"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the deployment tests need it)", pytrace=False)
        pytest.skip(message)
    return _render(target)


def documents(target: str) -> list[dict[str, Any]]:
    """Return the rendered objects of deploy/<target>."""
    return [d for d in yaml.safe_load_all(rendered(target)) if d]


def by_kind(target: str, kind: str) -> dict[str, dict[str, Any]]:
    """Return the rendered objects of one kind by name."""
    return {d["metadata"]["name"]: d for d in documents(target) if d["kind"] == kind}
