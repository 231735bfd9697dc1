"""Benchmarks, each run as `python -m bench.NAME [--json]`. They measure; tests assert."""
