"""`python -m gpulease` is the `gpulease` command."""

from gpulease.cli import main

main()
