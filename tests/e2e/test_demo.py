"""`make demo`'s main job end to end, and its HTML report rendered in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "auto-approved request",
    "approved by an approver's click",
    "denied with a reason",
    "a pod with unchanged YAML lands on its tier",
    "a shortage moves a node between tiers",
    "a request waits for capacity",
    "a lease expires, is reclaimed, and the waitlisted request is placed",
    "an expiry warning is extended from its button",
)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's 'chromium' package is needed to render the report (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run([sys.executable, "-m", "gpulease.demo", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    return result, out


@pytest.mark.timeout(300)
def test_demo_runs_every_step_and_exits_zero(demo):
    result, out = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo finished: every step happened as expected" in result.stdout
    for step in STEPS:
        assert step in result.stdout
    assert "capacity per tier" in result.stdout
    report = (out / "report.html").read_text()
    for step in STEPS:
        assert step.replace("'", "&#x27;") in report


@pytest.mark.timeout(300)
def test_the_report_renders_the_timeline_in_chromium(demo, tmp_path):
    browser = chromium()
    _, out = demo
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         (out / "report.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert '<h2 id="timeline">Timeline</h2>' in dom
    assert dom.count('class="step"') == len(STEPS)
    assert "Every step happened as expected." in dom
    assert "#gpu-approvals" in dom and "<svg" in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", (out / "report.html").resolve().as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000  # something was drawn
