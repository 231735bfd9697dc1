"""Bad input to the CLI ends in one clear error and a non-zero exit, never a traceback:
`policy` with huge durations or a non-UTF-8 file, `render` with a bad --out, settings or lease
file, and the services with options or a broker they cannot work with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config.settings import EXAMPLE_POLICY

EXAMPLE = str(EXAMPLE_POLICY)
LEASE = {
    "lease_id": "0123456789abcdef0123456789abcdef", "namespace": "alice-nb", "tier": "h100-1g",
    "team": "ml-research", "requester": "U0ALICE", "email": "alice@example.com", "units": 2,
    "expires_at": "2026-12-01T12:00:00Z", "cluster": "sandbox",
}


def gpulease(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    return subprocess.run(
        [sys.executable, "-m", "gpulease", *args], capture_output=True, text=True, timeout=60,
        env=clean | (env or {}),
    )


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def flat(text: str) -> str:
    """Usage errors come in a box, wrapped: the text without its borders and line breaks."""
    return " ".join(text.replace("│", " ").split())


def test_evaluate_with_a_huge_duration_is_a_usage_error():
    result = gpulease("policy", "evaluate", "--policy", EXAMPLE, "--user", "U0ALICE", "--team", "ml-research",
                      "--tier", "h100-1g", "--namespace", "a-1", "--duration", "99999999999d")
    no_traceback(result)
    assert result.returncode == 2 and "too long: at most 3650d" in flat(result.stderr)


def test_check_of_a_utf16_policy_says_it_is_not_utf8(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY.read_text(), encoding="utf-16")
    result = gpulease("policy", "check", str(path))
    no_traceback(result)
    assert result.returncode == 1 and "not UTF-8 text" in result.stderr and str(path) in result.stderr


def test_check_of_a_policy_with_a_bad_quantity_names_field_and_value(tmp_path: Path):
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    data["tiers"][0]["per_unit"]["memory"] = "24 GB"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    result = gpulease("policy", "check", str(path))
    assert result.returncode == 1
    assert "tiers[0].per_unit.memory: unsupported quantity '24 GB' (use forms like 4, 500m, 24Gi)" in result.stderr


def _render(tmp_path: Path, lease: dict, *, out: Path | None = None, policy: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    lease_file = tmp_path / "lease.yaml"
    lease_file.write_text(yaml.safe_dump(lease))
    args = ["render", "--lease", str(lease_file), "--out", str(out or tmp_path / "out")]
    return gpulease(*args, *(["--policy", EXAMPLE] if policy else []), env=env)


def test_render_to_a_file_instead_of_a_directory(tmp_path: Path):
    afile = tmp_path / "afile"
    afile.write_text("")
    result = _render(tmp_path, LEASE, out=afile)
    no_traceback(result)
    assert result.returncode == 1 and f"--out {afile} is a file; give a directory" in result.stderr


def test_render_under_a_file_cannot_write(tmp_path: Path):
    (tmp_path / "afile").write_text("")
    result = _render(tmp_path, LEASE, out=tmp_path / "afile" / "below")
    no_traceback(result)
    assert result.returncode == 1 and "cannot write the bundle under" in result.stderr


def test_render_with_bad_settings_names_the_variable(tmp_path: Path):
    result = _render(tmp_path, LEASE, policy=False, env={"GPULEASE_KUBE_RETRY_ATTEMPTS": "zero"})
    no_traceback(result)
    assert result.returncode == 2 and "GPULEASE_KUBE_RETRY_ATTEMPTS" in result.stderr


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"email": ""}, "email is empty"),
        ({"email": None, "requester": " "}, "requester, email are empty"),
        ({"team": "nope"}, "unknown team 'nope'; known teams: ml-research, vision"),
        ({"tier": "nope"}, "unknown tier 'nope'"),
        ({"units": 0}, "units 0 is not a whole number of 1 or more"),
        ({"namespace": "../../etc"}, "namespace: '../../etc' is not a valid name"),
    ],
)
def test_render_refuses_a_lease_the_policy_cannot_make(tmp_path: Path, change: dict, says: str):
    result = _render(tmp_path, LEASE | change)
    no_traceback(result)
    assert result.returncode == 1 and says in result.stderr
    assert not (tmp_path / "out").exists()


def test_worker_refuses_the_in_process_broker():
    result = gpulease("worker")  # the default broker is memory://
    no_traceback(result)
    assert result.returncode == 2
    assert "GPULEASE_BROKER_URL is memory://" in result.stderr and "redis://HOST:6379/0" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["worker", "--queues", "gpulease.leases,gpulease.mvoes"], "unknown queue 'gpulease.mvoes' (did you mean"),
        (["worker", "--pool", "bogus"], "'bogus' is not one of"),
        (["worker", "--concurrency", "0"], "--concurrency"),
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--port", "99999"], "--port"),
        (["socket", "--metrics-port", "70000"], "--metrics-port"),
        (["worker", "-l", "LOUD"], "Invalid value for -l/--loglevel: 'LOUD' is not a log level; use one of DEBUG"),
        (["beat", "--loglevel", "verbose"], "Invalid value for -l/--loglevel: 'verbose' is not a log level"),
    ],
)
def test_service_options_out_of_range_are_usage_errors(args: list[str], says: str):
    result = gpulease(*args, env={"GPULEASE_BROKER_URL": "redis://127.0.0.1:1/0"})
    no_traceback(result)
    assert result.returncode == 2 and says in flat(result.stderr)


def test_beat_on_the_in_process_broker_warns_that_no_worker_gets_its_sweeps(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpulease", "beat", "--schedule-file", str(tmp_path / "schedule")],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = proc.stderr.readline()  # the warning comes before beat starts
    finally:
        proc.terminate()
        proc.wait(30)
    assert first.startswith("warning: GPULEASE_BROKER_URL is memory://") and "reach no worker" in first


@pytest.mark.parametrize("command", ["serve", "socket", "worker", "beat"])
def test_an_unknown_log_level_names_the_variable(command: str):
    result = gpulease(command, env={"GPULEASE_LOG_LEVEL": "LOUD", "GPULEASE_BROKER_URL": "redis://127.0.0.1:1/0"})
    no_traceback(result)
    assert result.returncode == 2
    assert "GPULEASE_LOG_LEVEL: Value error, 'LOUD' is not a log level" in result.stderr


def test_worker_and_beat_accept_a_level_in_any_case():
    # Refused later, by the broker check, so the level passed: no usage error.
    result = gpulease("worker", "-l", "debug")
    assert result.returncode == 2 and "loglevel" not in result.stderr and "memory://" in result.stderr
