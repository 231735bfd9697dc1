"""Check command lines written in deployment files against the real parsers: the `gpulease`
CLI (typer/click) and the probe script deploy/probe.py, so a renamed option or subcommand
fails a test instead of a rollout."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from types import ModuleType

import typer

from gpulease import cli
from tests.integration.deploy.conftest import DEPLOY


def load_probe() -> ModuleType:
    """Import deploy/probe.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("gpulease_probe", DEPLOY / "probe.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_gpulease_args(args: Sequence[str]) -> None:
    """Parse `gpulease ARGS` as the CLI would, without running it; AssertionError if refused."""
    # Typer may ship its own copy of click: go by behaviour, not by click's classes.
    command = typer.main.get_command(cli.app)
    rest = [str(a) for a in args]
    path = ["gpulease"]
    while hasattr(command, "list_commands"):  # a group: descend into the named subcommand
        assert rest, f"{' '.join(path)} needs a subcommand"
        name, rest = rest[0], rest[1:]
        sub = command.get_command(command.context_class(command), name)
        assert sub is not None, f"{' '.join(path)} has no subcommand {name!r}"
        command, path = sub, [*path, name]
    try:
        command.make_context(" ".join(path), list(rest))
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # not a usage error: a bug here, not in the args
            raise
        raise AssertionError(f"`{' '.join(path)} {' '.join(rest)}` is refused by the CLI: {exc.format_message()}") from None


def check_probe_args(args: Sequence[str]) -> None:
    """Parse `gpulease-probe ARGS`; AssertionError if refused."""
    parser = load_probe().build_parser()
    try:
        parser.parse_args([str(a) for a in args])
    except SystemExit:
        raise AssertionError(f"`gpulease-probe {' '.join(args)}` is refused by deploy/probe.py") from None
