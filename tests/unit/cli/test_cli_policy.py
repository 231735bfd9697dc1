"""`gpulease policy check` and `gpulease policy evaluate`, run as the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from config.settings import EXAMPLE_POLICY

EXAMPLE = str(EXAMPLE_POLICY)


def gpulease(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpulease", *args], capture_output=True, text=True, timeout=60
    )


def test_check_example_exits_zero_and_lists_units_per_gpu():
    result = gpulease("policy", "check", EXAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    tiers = {t["name"]: t for t in json.loads(result.stdout)["tiers"]}
    assert tiers["h100-1g"] == {
        "name": "h100-1g", "gpu_model": "H100-80GB", "mode": "mig", "units_per_gpu": 7
    }
    assert tiers["h100-shared"]["units_per_gpu"] == 4
    assert tiers["h100-full"]["units_per_gpu"] == 1
    human = gpulease("policy", "check", EXAMPLE)
    assert human.returncode == 0 and "policy OK" in human.stdout


def _write_variant(tmp_path: Path, change) -> str:
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    change(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_misspelt_field_exits_nonzero_naming_file_and_field(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["limits"].update(max_live_lease_per_user=2))
    result = gpulease("policy", "check", path)
    assert result.returncode == 1
    assert path in result.stderr
    assert "limits.max_live_lease_per_user: unknown field (did you mean 'max_live_leases_per_user'?)" in (
        result.stderr.replace("\n", "")
    )


def test_unknown_gpu_model_exits_nonzero_naming_field(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["tiers"][2].update(gpu_model="H100-90GB"))
    result = gpulease("policy", "check", path, "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "tiers[2].gpu_model: unknown GPU model 'H100-90GB'" in result.stderr


def _evaluate(*extra: str) -> dict:
    base = ["policy", "evaluate", "--policy", EXAMPLE, "--user", "U0ALICE", "--team", "ml-research"]
    result = gpulease(*base, *extra, "--json")
    verdict = json.loads(result.stdout)
    assert result.returncode == (0 if verdict["allowed"] else 1), result.stderr
    return verdict


def test_evaluate_auto_approval_explained_by_rule():
    verdict = _evaluate("--tier", "h100-1g", "--units", "1", "--duration", "12h", "--namespace", "a-1")
    assert verdict == {"allowed": True, "errors": [], "approval": "auto", "rule": "small-and-short"}
    verdict = _evaluate("--tier", "h100-3g", "--units", "1", "--duration", "12h", "--namespace", "a-1")
    assert verdict == {"allowed": True, "errors": [], "approval": "required", "rule": None}


def test_evaluate_refusals_name_the_field():
    verdict = _evaluate("--tier", "h100-1g", "--units", "1", "--namespace", "kube-mine")
    assert verdict["allowed"] is False
    assert verdict["errors"][0]["field"] == "namespace"
    verdict = _evaluate(
        "--tier", "h100-1g", "--units", "3", "--namespace", "ok", "--team-units", "h100-1g=12"
    )
    assert [e["field"] for e in verdict["errors"]] == ["units"]
    assert "exceed the quota" in verdict["errors"][0]["message"]
    verdict = _evaluate("--tier", "h100-full", "--units", "1", "--duration", "8d", "--namespace", "ok")
    assert verdict["errors"] == [
        {
            "field": "duration",
            "message": "1w1d is longer than tier h100-full allows (1w); ask for less and extend later",
        }
    ]


def test_evaluate_bad_arguments_exit_nonzero():
    base = ["policy", "evaluate", "--policy", EXAMPLE, "--user", "U", "--team", "t", "--tier", "x"]
    result = gpulease(*base, "--namespace", "n", "--duration", "three days")
    assert result.returncode == 2 and "not a duration" in result.stderr
    result = gpulease(*base, "--namespace", "n", "--team-units", "h100-1g")
    assert result.returncode == 2 and "TIER=N" in result.stderr


def test_evaluate_exits_one_when_the_request_is_refused():
    base = ["policy", "evaluate", "--policy", EXAMPLE, "--user", "U0ALICE", "--team", "ml-research",
            "--tier", "h100-1g", "--namespace", "kube-mine"]
    result = gpulease(*base, "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["allowed"] is False
    result = gpulease(*base)
    assert result.returncode == 1 and "refused" in result.stdout


# Messages quote the user's own text; printed as Rich markup, `[a-z0-9]` vanished and `[/b]`
# crashed (MarkupError). They must come out as written.
def test_policy_errors_print_brackets_as_written(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["teams"][0].update(name="ml[a-z0-9][/b]"))
    result = gpulease("policy", "check", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "teams[0].name: 'ml[a-z0-9][/b]' must be a DNS label: lower-case letters, digits and '-'" in (
        result.stderr.replace("\n", "")
    )


def test_check_names_a_file_with_brackets_in_its_path(tmp_path):
    folder = tmp_path / "[red]team"
    folder.mkdir()
    path = folder / "policy[bold].yaml"
    path.write_text(EXAMPLE_POLICY.read_text())
    result = gpulease("policy", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: 5 tiers" in result.stdout


def test_evaluate_prints_a_refused_name_as_written():
    result = gpulease("policy", "evaluate", "--policy", EXAMPLE, "--user", "U0ALICE", "--team", "ml-research",
                      "--tier", "h100-1g", "--namespace", "[/b]x")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "namespace: '[/b]x' is not a valid name" in result.stdout
