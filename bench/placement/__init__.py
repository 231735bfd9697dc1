"""Placement benchmark: elastic pools against static splits and a hindsight upper bound.

Run `python -m bench.placement [--quick] [--json] [--plot PATH]`. Nothing in the product
imports it.
"""
