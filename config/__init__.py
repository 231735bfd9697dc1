"""Settings and the policy file schema.

Imports nothing else of gpulease; every other package may import it.
"""
