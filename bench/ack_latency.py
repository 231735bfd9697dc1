"""Benchmark: how fast `gpulease serve` acknowledges Slack (Slack allows 3,000 ms).

    python -m bench.ack_latency [--json] [--quick] [--clients 20] [--commands 200] [--clicks 200]

Starts the Slack and Kubernetes sandboxes and a SQLite store, runs `gpulease serve` (gunicorn,
embedded workflow worker) in its own process, records one request that waits for approval,
then sends 200 signed slash commands (list, status, the request form, /gpu-admin capacity)
and 200 button clicks (Approve and Deny on that request's card, by both approvers, so one
click decides and the rest are told it was decided) from 20 concurrent clients. Latency is
the time from sending a request to the app's HTTP answer: the ack. An error is any answer
other than 200, a failed connection, or an ack slower than 3 s.

Prints `{"p50_ms", "p99_ms", "errors", "n"}` (plus details) with --json. Goal: p99 < 100 ms,
zero errors. `failed_followups` counts the app's calls to Slack after the acks (answers through
response_url, modals opened with the trigger) that failed: acking fast must not lose the work.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from leases.store import upgrade
from sandbox.kube import KubeSandbox
from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, RemoteSandbox, SignedClient, payloads

ROOT = Path(__file__).resolve().parents[1]
SLACK_LIMIT_S = 3.0
APPROVALS = "C0APPROVALS"
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
COMMANDS = (("/gpu-namespace", "list"), ("/gpu-namespace", "status bench-pending"), ("/gpu-namespace", ""),
            ("/gpu-admin", "capacity"))


def _wait(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        time.sleep(0.02)
    return value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# The Slack sandbox runs in a process of its own, so its server threads do not share a GIL with
# the load generator, and with an accept backlog of 512: every signed request first registers
# its trigger and response_url with it, 20 clients wide, on top of the bot's own calls, and
# http.server's default backlog of 5 would reset the load generator's own connections.
SLACK_SERVER = """
import sys
from sandbox.slack import SlackSandbox
slack = SlackSandbox(port=int(sys.argv[1]))
slack._httpd.socket.listen(512)
print(slack.url, flush=True)
slack.serve_forever()
"""


def _slack_sandbox(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLACK_SERVER, str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True, text=True)


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _serve(workdir: Path, slack: RemoteSandbox, kube: KubeSandbox, port: int, threads: int) -> subprocess.Popen:
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    env.update(GPULEASE_DATABASE_URL=url, GPULEASE_SLACK_BOT_TOKEN=DEFAULT_TOKEN,
               GPULEASE_SLACK_SIGNING_SECRET=DEFAULT_SIGNING_SECRET, GPULEASE_SLACK_API_URL=f"{slack.root_url}/api/",
               GPULEASE_KUBE_API_URL=kube.url, GPULEASE_LOG_LEVEL="ERROR")
    return subprocess.Popen(
        [sys.executable, "-m", "gpulease", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--threads", str(threads)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _pending_card(client: SignedClient, slack: RemoteSandbox) -> dict[str, Any]:
    """Record a request that needs approval, through the form, and return its approval card."""
    client.slash_command("/gpu-namespace", user_id="U0ALICE")
    form = _wait(lambda: (slack.views("U0ALICE") or [None])[-1], timeout=10, what="the request form")
    client.view_submission(form, {
        "namespace": {"value": "bench-pending"}, "tier": {"value": payloads.radio_buttons("h100-3g")},
        "units": {"value": payloads.number_input(1)}, "duration": {"value": "2d"},
        "reason": {"value": "benchmark"},
    }, user_id="U0ALICE")
    return _wait(lambda: next((m for m in slack.messages(APPROVALS) if "bench-pending" in m.get("text", "")), None),
                 timeout=20, what="the approval card")


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def run(*, clients: int, commands: int, clicks: int, threads: int) -> dict[str, Any]:
    """Serve the bot, send the load, and return latency figures."""
    with tempfile.TemporaryDirectory(prefix="gpulease-bench-") as workdir, \
            KubeSandbox(port=0, namespace_delay=0.0) as kube:
        sandbox = _slack_sandbox(_free_port())
        slack = RemoteSandbox(sandbox.stdout.readline().strip())
        port = _free_port()
        server = _serve(Path(workdir), slack, kube, port, threads)
        try:
            _wait(lambda: _healthy(f"http://127.0.0.1:{port}/healthz") or server.poll() is not None,
                  timeout=60, what="gpulease serve")
            if server.poll() is not None:
                raise RuntimeError(f"gpulease serve exited with {server.returncode}")
            endpoint = f"http://127.0.0.1:{port}/slack/events"
            card = _pending_card(SignedClient(endpoint, DEFAULT_SIGNING_SECRET, slack.root_url), slack)

            jobs = [("command", i) for i in range(commands)] + [("click", i) for i in range(clicks)]
            jobs = [jobs[i] for i in _interleave(commands, clicks)]
            # The load generator shares this process with the Kubernetes sandbox: its objects made
            # so far are never garbage, so the collector's pauses do not scan them (and do not
            # show up as latency of the app).
            gc.collect()
            gc.freeze()
            done = _client(endpoint, slack.root_url, card, jobs, clients)
            results, wall = done["results"], done["end"] - done["start"]
            failed_followups = _failed_followups(slack)
        finally:
            _stop(server)
            _stop(sandbox)
    latencies = [ms for _, ms, status in results if status == 200]
    errors = sum(1 for _, ms, status in results if status != 200 or ms > SLACK_LIMIT_S * 1000)
    by_kind = {kind: [ms for k, ms, s in results if k == kind and s == 200] for kind in ("command", "click")}
    return {
        "p50_ms": round(_percentile(latencies, 50), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "errors": errors,
        "n": len(results),
        "max_ms": round(max(latencies, default=0.0), 2),
        "p99_command_ms": round(_percentile(by_kind["command"], 99), 2),
        "p99_click_ms": round(_percentile(by_kind["click"], 99), 2),
        "clients": clients,
        "requests_per_s": round(len(results) / wall, 1),
        "failed_followups": failed_followups,
    }


def _failed_followups(slack: RemoteSandbox, *, settle: float = 0.5, bound: float = 20.0) -> int:
    """Return how many of the app's calls to Slack failed (e.g. an expired trigger), once the
    work after the acks has finished: no new call for `settle` seconds (at most `bound`)."""
    deadline, seen, quiet_since = time.monotonic() + bound, -1, time.monotonic()
    while time.monotonic() < deadline:
        calls = slack.calls()
        if len(calls) != seen:
            seen, quiet_since = len(calls), time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            break
        time.sleep(0.1)
    return sum(1 for call in calls if not call["ok"])


def _client(endpoint: str, sandbox_url: str, card: dict[str, Any], jobs: list[tuple[str, int]],
            threads: int) -> dict[str, Any]:
    """Send `jobs` from `threads` concurrent clients; return the results, and when sending
    started and ended."""
    to_bot = SignedClient(endpoint, DEFAULT_SIGNING_SECRET, sandbox_url)

    def send(job: tuple[str, int]) -> tuple[str, float, int]:
        kind, i = job
        if kind == "command":
            name, text = COMMANDS[i % len(COMMANDS)]
            user = "U0ADMIN" if name == "/gpu-admin" else USERS[i % len(USERS)]
            return _timed(kind, lambda: to_bot.slash_command(name, text, user_id=user))
        action = "lease.approve" if i % 2 == 0 else "lease.deny"
        approver = ("U0APPROVER1", "U0APPROVER2")[i // 2 % 2]
        return _timed(kind, lambda: to_bot.block_action(action, user_id=approver, channel=APPROVALS, message=card))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(send, jobs))
    return {"results": results, "start": start, "end": time.perf_counter()}


def _interleave(commands: int, clicks: int) -> list[int]:
    """Return job indexes alternating commands and clicks, so both run under the same load."""
    order, c, k = [], 0, 0
    while c < commands or k < clicks:
        if c < commands:
            order.append(c)
            c += 1
        if k < clicks:
            order.append(commands + k)
            k += 1
    return order


def _timed(kind: str, send: Any) -> tuple[str, float, int]:
    try:
        answer = send()
    except OSError:
        return kind, 0.0, 0
    return kind, answer.elapsed * 1000, answer.status


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.ack_latency", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="40 commands and 40 clicks (a smoke run)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--commands", type=int, default=200, help="slash commands to send (default 200)")
    parser.add_argument("--clicks", type=int, default=200, help="button clicks to send (default 200)")
    parser.add_argument("--threads", type=int, default=32, help="gunicorn threads (default 32)")
    args = parser.parse_args(argv)
    commands, clicks = (40, 40) if args.quick else (args.commands, args.clicks)
    result = run(clients=args.clients, commands=commands, clicks=clicks, threads=args.threads)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:18} {value}")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
