"""`python -m sandbox.prometheus --port P`: serve the Prometheus stand-in until Ctrl-C."""

import argparse
import threading

from .server import PrometheusSandbox

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--port", type=int, default=9090)
args = parser.parse_args()
with PrometheusSandbox(port=args.port) as prom:
    print(f"Prometheus stand-in on {prom.url}", flush=True)
    threading.Event().wait()
