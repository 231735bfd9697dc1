"""Composition root and CLI: builds settings, store and clients and wires them together.

May import every package. Nothing imports it.
"""

__version__ = "0.1.0"
