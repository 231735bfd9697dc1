"""Tests of the sandbox Kubernetes API server through the official client and kubectl."""
