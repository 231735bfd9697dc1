"""The lease domain and its state store: models, store, lifecycle, policy, GPU catalog,
capacity and placement, ports.

May import config only. Imported by provisioners, workflows, bot and gpulease.
"""
