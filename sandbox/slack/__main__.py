"""Run the Slack Web API sandbox on its own: python -m sandbox.slack --port 8790.

Part of sandbox.slack.
"""

from __future__ import annotations

import argparse
import logging

from .directory import Directory
from .server import DEFAULT_TOKEN, SlackSandbox


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.slack", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--token", action="append", help=f"accepted bot token (repeatable; default {DEFAULT_TOKEN})")
    parser.add_argument("--directory", help="YAML/JSON file with team, users, usergroups, channels")
    parser.add_argument("--verbose", action="store_true", help="log every call")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    directory = Directory.from_file(args.directory) if args.directory else None
    sandbox = SlackSandbox(host=args.host, port=args.port, tokens=args.token or (DEFAULT_TOKEN,),
                           directory=directory)
    print(f"Slack sandbox Web API at {sandbox.url} (admin at {sandbox.root_url}/_sandbox/)", flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
