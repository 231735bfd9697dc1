"""A stand-in for the Kubernetes API server, with simulated NVIDIA GPU nodes and GPU
Operator, served over HTTP on 127.0.0.1 for the official client and kubectl.

Run it: `python -m sandbox.kube --port 8001 [--cluster FILE]`; in tests:
`with KubeSandbox(port=0) as kube: ... kube.url ...`. Imports nothing of the product.
"""

from .control import KubeSandbox
from .errors import ApiError
from .faults import FaultRule
from .requestlog import RecordedRequest

__all__ = ["ApiError", "FaultRule", "KubeSandbox", "RecordedRequest"]
