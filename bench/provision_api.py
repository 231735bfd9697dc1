"""Benchmark: API requests and time to provision and tear down lease namespaces.

    python -m bench.provision_api --json [--count 50] [--pinning mutating-admission-policy]

Starts its own sandbox API server, provisions `count` namespaces one after another with
the platform's client, retry policy and bundle, then tears them all down. Requests are
counted at the server (its request log), not by the client. Prints one JSON object:
requests_per_namespace (mean, the one-off cluster-wide objects included), its max,
requests_per_teardown, p50/p95 of one bundle's apply in milliseconds, and n.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from config.policy import PinningMechanism, load_policy
from config.settings import EXAMPLE_POLICY, Settings
from provisioners.bundle import apply, spec_from, teardown
from provisioners.kube import make_api_client, retry_policy
from sandbox.kube import KubeSandbox


def run(*, count: int, pinning: PinningMechanism, poll: float, namespace_delay: float) -> dict[str, Any]:
    """Provision and tear down `count` namespaces against a fresh sandbox; return the figures."""
    policy = load_policy(EXAMPLE_POLICY)
    tiers = [t.name for t in policy.tiers]
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with KubeSandbox(port=0, namespace_delay=namespace_delay) as kube:
        settings = Settings(_env_file=None, kube_api_url=kube.url)
        retry = retry_policy(settings=settings)
        specs = []
        for i in range(count):
            spec = spec_from(
                policy,
                lease_id=f"{i:032x}",
                namespace=f"bench-{i:04d}",
                cluster=policy.clusters[0].name,
                tier=tiers[i % len(tiers)],
                team=policy.teams[0].name,
                requester="U0BENCH",
                email="bench@example.com",
                units=1 + i % 2,
                expires_at=expires,
            )
            specs.append(dataclasses.replace(spec, pinning=pinning))
        apply_ms: list[float] = []
        apply_requests: list[int] = []
        teardown_ms: list[float] = []
        teardown_requests: list[int] = []
        with make_api_client(settings=settings) as api:
            for spec in specs:
                before = len(kube.requests())
                started = time.perf_counter()
                apply(api, spec, retry=retry)
                apply_ms.append((time.perf_counter() - started) * 1000)
                apply_requests.append(len(kube.requests()) - before)
            for spec in specs:
                before = len(kube.requests())
                started = time.perf_counter()
                teardown(api, spec, retry=retry, timeout=30.0, poll=poll)
                teardown_ms.append((time.perf_counter() - started) * 1000)
                teardown_requests.append(len(kube.requests()) - before)
            failed = sum(1 for r in kube.requests() if r.status is not None and r.status >= 400
                         and not (r.method == "GET" and r.status == 404))
    return {
        "n": count,
        "pinning": str(pinning),
        "requests_per_namespace": round(statistics.fmean(apply_requests), 2),
        "max_requests_per_namespace": max(apply_requests),
        "requests_per_teardown": round(statistics.fmean(teardown_requests), 2),
        "p50_bundle_ms": round(_percentile(apply_ms, 50), 2),
        "p95_bundle_ms": round(_percentile(apply_ms, 95), 2),
        "p50_teardown_ms": round(_percentile(teardown_ms, 50), 2),
        "failed_requests": failed,
    }


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.provision_api", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--count", type=int, default=50, help="namespaces to provision (default 50)")
    parser.add_argument(
        "--pinning",
        choices=[m.value for m in PinningMechanism],
        default=PinningMechanism.NODE_SELECTOR_ANNOTATIONS.value,
    )
    parser.add_argument("--poll", type=float, default=0.05, help="teardown poll interval, seconds")
    parser.add_argument(
        "--namespace-delay", type=float, default=0.0, help="sandbox: seconds a namespace stays terminating"
    )
    args = parser.parse_args(argv)
    result = run(
        count=args.count, pinning=PinningMechanism(args.pinning), poll=args.poll,
        namespace_delay=args.namespace_delay,
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
