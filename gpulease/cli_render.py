"""`gpulease render`: write a lease's bundle as YAML files for GitOps (Argo CD, Flux)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
import yaml
from rich.markup import escape

from config.policy import Policy, PolicyError
from config.settings import SettingsError, load_settings
from gpulease.console import err, out
from gpulease.wiring import load_checked_policy
from leases.policy import namespace_errors
from provisioners.bundle import spec_from
from provisioners.bundle.guard import OwnershipError
from provisioners.gitops import write_bundle

FIELDS = ("lease_id", "namespace", "tier", "team", "requester", "email", "units", "expires_at")


def _fail(message: str, *, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _lease_problem(*, policy: Policy, lease: dict) -> str | None:
    """Say what in the lease file cannot make a lease of this policy (None when it can)."""
    # An empty email would bind the RoleBinding to the subject "oidc:", and so on.
    blank = [f for f in FIELDS if lease[f] is None or not str(lease[f]).strip()]
    if blank:
        return f"{', '.join(blank)} {'is' if len(blank) == 1 else 'are'} empty; give every one of {', '.join(FIELDS)}"
    if not str(lease["units"]).isdigit() or int(lease["units"]) < 1:
        return f"units {lease['units']!r} is not a whole number of 1 or more"
    try:
        policy.team(str(lease["team"]))
        policy.tier(str(lease["tier"]))
    except KeyError as exc:
        return str(exc.args[0])
    # The namespace is also a folder name under --out: a bad one must not reach the disk.
    problems = namespace_errors(policy, str(lease["namespace"]), live_namespaces=frozenset())
    return f"namespace: {problems[0]}" if problems else None


def render(
    lease_file: Path = typer.Option(..., "--lease", help=f"YAML or JSON with {', '.join(FIELDS)} (and cluster)."),
    out_dir: Path = typer.Option(..., "--out", help="Root folder; files go to OUT/<cluster>/<namespace>/."),
    policy_file: Path | None = typer.Option(None, "--policy", help="Overrides GPULEASE_POLICY_FILE."),
) -> None:
    """Render a lease's namespace bundle as YAML files, byte-identical for the same lease."""
    if out_dir.exists() and not out_dir.is_dir():
        raise _fail(f"--out {out_dir} is a file; give a directory (it is created if missing)")
    try:
        policy = load_checked_policy(policy_file or load_settings().policy_file)
    except SettingsError as exc:
        raise _fail(str(exc), code=2) from None
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    try:
        lease = yaml.safe_load(lease_file.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(f"cannot read {lease_file}: {exc}") from None
    if not isinstance(lease, dict):
        raise _fail(f"{lease_file} must hold a mapping with {', '.join(FIELDS)}")
    missing = [f for f in FIELDS if f not in lease]
    if missing:
        raise _fail(f"{lease_file} lacks {', '.join(missing)}")
    problem = _lease_problem(policy=policy, lease=lease)
    if problem:
        raise _fail(f"{lease_file}: {problem}")
    expires = lease["expires_at"]
    try:
        if not isinstance(expires, datetime):
            expires = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        spec = spec_from(
            policy, lease_id=str(lease["lease_id"]), namespace=str(lease["namespace"]), cluster=lease.get("cluster"),
            tier=str(lease["tier"]), team=str(lease["team"]), requester=str(lease["requester"]),
            email=str(lease["email"]), units=int(lease["units"]), expires_at=expires,
        )
    except (KeyError, ValueError) as exc:
        raise _fail(f"{lease_file}: {exc}") from None
    try:
        folder = write_bundle(spec, root=out_dir)
    except OwnershipError as exc:
        raise _fail(f"not written: {exc}") from None
    except OSError as exc:
        raise _fail(f"cannot write the bundle under {out_dir}: {exc.strerror} ({exc.filename}); "
                    "give --out a directory you can write to") from None
    out.print(f"wrote {folder}", highlight=False)
