"""Command line: serve the Kubernetes API stand-in until interrupted.

python -m sandbox.kube --port 8001 [--cluster FILE] [--operator-delay 2]
"""

from __future__ import annotations

import argparse
import logging

from .control import KubeSandbox


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.kube", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--cluster", help="cluster YAML (default: the shipped default cluster)")
    parser.add_argument(
        "--operator-delay",
        type=float,
        default=2.0,
        help="seconds a simulated MIG / time-slicing reconfiguration takes",
    )
    parser.add_argument(
        "--namespace-delay",
        type=float,
        default=1.0,
        help="seconds before a deleted namespace's content is removed",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    kube = KubeSandbox(
        args.cluster,
        host=args.host,
        port=args.port,
        operator_delay=args.operator_delay,
        namespace_delay=args.namespace_delay,
    )
    print(f"kube sandbox serving on {kube.url}", flush=True)
    try:
        kube.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        kube.stop()


if __name__ == "__main__":
    main()
