"""Local stand-ins for the outside world: a Kubernetes API server with simulated GPU nodes
and GPU Operator, and a Slack Web API server.

Imports nothing of the product; it stands for systems the product talks to over HTTP.
"""
