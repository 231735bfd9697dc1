#!/usr/bin/env python3
"""Cheap health probes for the gpulease containers (installed as `gpulease-probe` in the image).

    gpulease-probe http URL                      the bot: URL answers 2xx (GET /healthz)
    gpulease-probe broker [--url URL]            a worker: it holds a TCP connection to the broker
    gpulease-probe fresh PATH --max-age SECONDS  beat: its schedule file was written recently

Standard library only and no import of the project: a probe runs every few seconds in every
replica, so it must start in milliseconds. `celery inspect ping` would import the whole app
and make a round trip through the broker to every worker on each probe.

Why these checks:
- broker: a Celery worker keeps its consumer connection to Redis open all the time. A worker
  with no established connection to the broker's port is not consuming (Redis unreachable, or
  the known failure where a worker survives a broker restart without reconnecting).
- fresh: Celery beat writes its schedule file (a shelve: one or more files starting with
  PATH) when it starts and, after sending a task, whenever its last write is over 3 minutes
  old. Beat sends the minute sweep every 60 s, so the file is never older than about 4
  minutes while beat's loop runs; a stale file means beat is stuck.
Exit status 0 is healthy, 1 unhealthy (with the reason on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"
DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}


def check_http(url: str, *, timeout: float) -> str | None:
    """Return None when `url` answers 2xx, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed local URL
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url} did not answer: {exc}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def broker_port(url: str) -> int | None:
    """Return the broker's TCP port from its URL; None for brokers with no connection (memory://)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        return None
    return parts.port or DEFAULT_PORTS[parts.scheme]


def established_remote_ports(proc: Path = Path("/proc/net")) -> set[int]:
    """Return the remote ports of this network namespace's established TCP connections."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == ESTABLISHED:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def check_broker(url: str, *, proc: Path = Path("/proc/net")) -> str | None:
    """Return None when a connection to the broker's port is established, else why not."""
    if not url:
        return "no broker URL (set GPULEASE_BROKER_URL or pass --url)"
    port = broker_port(url)
    if port is None:
        return None  # memory:// and the like: the worker runs in-process, nothing to connect to
    if port not in established_remote_ports(proc):
        return f"no established connection to the broker's port {port}"
    return None


def check_fresh(path: str, *, max_age: float, now: float | None = None) -> str | None:
    """Return None when a file whose name starts with `path` was written within max_age seconds."""
    target = Path(path)
    try:
        times = [p.stat().st_mtime for p in target.parent.iterdir() if p.name.startswith(target.name)]
    except OSError as exc:
        return f"cannot read {target.parent}: {exc}"
    if not times:
        return f"no file {path}* yet"
    age = (time.time() if now is None else now) - max(times)
    return None if age <= max_age else f"{path} last written {age:.0f}s ago (more than {max_age:.0f}s)"


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser (the manifests' probe commands are checked against it)."""
    parser = argparse.ArgumentParser(prog="gpulease-probe", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    http = sub.add_parser("http", help="GET a URL, healthy on 2xx")
    http.add_argument("url")
    http.add_argument("--timeout", type=float, default=3.0)
    broker = sub.add_parser("broker", help="an established TCP connection to the broker")
    broker.add_argument("--url", default=os.environ.get("GPULEASE_BROKER_URL", ""))
    fresh = sub.add_parser("fresh", help="a file written within --max-age seconds")
    fresh.add_argument("path")
    fresh.add_argument("--max-age", type=float, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one probe; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.probe == "http":
        problem = check_http(args.url, timeout=args.timeout)
    elif args.probe == "broker":
        problem = check_broker(args.url)
    else:
        problem = check_fresh(args.path, max_age=args.max_age)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
