"""Acting on clusters: the Kubernetes client with retries, the namespace bundle, GPU Operator
integration and the GitOps renderer.

May import leases and config. Imported by workflows and gpulease.
"""
