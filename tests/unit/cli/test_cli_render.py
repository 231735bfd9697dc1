"""`gpulease render --lease FILE --out DIR`: GitOps files, byte-identical for the same lease."""

from __future__ import annotations

import subprocess
import sys

import yaml

from config.settings import EXAMPLE_POLICY

LEASE = {
    "lease_id": "0123456789abcdef0123456789abcdef", "namespace": "alice-nb", "tier": "h100-1g",
    "team": "ml-research", "requester": "U0ALICE", "email": "alice@example.com", "units": 2,
    "expires_at": "2026-12-01T12:00:00Z", "cluster": "sandbox",
}


def render(lease_file, out) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpulease", "render", "--policy", str(EXAMPLE_POLICY), "--lease", str(lease_file),
         "--out", str(out)], capture_output=True, text=True, timeout=60,
    )


def test_render_writes_the_bundle_byte_identically(tmp_path):
    lease = tmp_path / "lease.yaml"
    lease.write_text(yaml.safe_dump(LEASE))
    first, second = tmp_path / "a", tmp_path / "b"
    assert render(lease, first).returncode == 0
    assert render(lease, second).returncode == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*.yaml"))
    assert any(str(f).startswith("sandbox/alice-nb/") for f in files)
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes()
    docs = [yaml.safe_load(p.read_text()) for p in sorted((first / "sandbox" / "alice-nb").glob("*.yaml"))]
    quota = next(d for d in docs if d.get("kind") == "ResourceQuota")
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"


def test_render_refuses_an_incomplete_lease_file(tmp_path):
    lease = tmp_path / "lease.yaml"
    lease.write_text(yaml.safe_dump({k: v for k, v in LEASE.items() if k != "tier"}))
    result = render(lease, tmp_path / "out")
    assert result.returncode == 1 and "lacks tier" in result.stderr
    assert not (tmp_path / "out").exists()
