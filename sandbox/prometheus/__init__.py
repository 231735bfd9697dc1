"""A stand-in for the Prometheus HTTP query API, holding DCGM exporter GPU utilisation series.

`with PrometheusSandbox() as prom: prom.add_samples(...); prom.url` — answers
`GET/POST /api/v1/query` for the PromQL subset documented in `promql.py`. Imports nothing of
the product.
"""

from .server import PrometheusSandbox

__all__ = ["PrometheusSandbox"]
