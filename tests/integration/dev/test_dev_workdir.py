"""`gpulease dev --workdir DIR` keeps its own store in DIR: a gpulease.db there (the default
store of `GPULEASE_DATABASE_URL`, e.g. with `--workdir .`) is left as it was."""

from __future__ import annotations

from gpulease.dev import running
from gpulease.embedded import EMBEDDED_DB


def test_the_default_store_in_the_workdir_is_left_alone(tmp_path):
    precious = tmp_path / "gpulease.db"
    precious.write_bytes(b"someone's state store")
    (tmp_path / EMBEDDED_DB).write_bytes(b"the last run's store")
    with running(tmp_path, port=0, sweep_every=None) as server:
        assert server.url
        assert (tmp_path / EMBEDDED_DB).read_bytes().startswith(b"SQLite format 3")  # recreated
    assert precious.read_bytes() == b"someone's state store"
