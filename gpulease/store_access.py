"""Check the state store before a command uses it, and turn its failures into plain errors.

Every command that touches the store (`gpulease db ...`, `leases list`, `demand`, and the
services at start through wiring) goes through here, so a store that is missing, unreachable,
of an unsupported kind, at another schema revision, or asked for a revision nobody knows ends
in one `StoreUnusable` saying what failed, against which store (password hidden), why, and
what to do next, instead of a traceback. Only gpulease/ modules import this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, SQLAlchemyError

from config.settings import SettingsError
from gpulease.redact import hide_password
from leases.store import MIGRATIONS_DIR, current_revision, head_revision

# Where the URL came from; the CLI names --database-url instead when that gave it.
FIX_URL = "GPULEASE_DATABASE_URL"


class StoreUnusable(SettingsError):
    """The state store cannot be used as it is; the message says why and what to do next.

    `problem` and `fix` are the two halves, for reports that show them apart (doctor).
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL (None for other databases and in-memory SQLite)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().absolute()


def require_existing(url: str) -> None:
    """Refuse a SQLite file that is not there, instead of letting SQLite create it empty."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise StoreUnusable(
            f"no state store at {path}", f"run `gpulease db upgrade` to create one there, or fix {FIX_URL}"
        )


def require_creatable(url: str) -> None:
    """Refuse a SQLite file whose directory is not there (SQLite would only say it cannot open it)."""
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        raise StoreUnusable(
            f"cannot create the state store at {path}: the directory {path.parent} does not exist",
            f"create it, or fix {FIX_URL}",
        )


def known_revisions() -> set[str]:
    """Return every schema revision this release's migrations know."""
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}


def require_known(*, url: str, current: str | None) -> None:
    """Refuse a store migrated by a newer release (e.g. before a rollback): this one cannot read it."""
    if current is not None and current not in known_revisions():
        raise StoreUnusable(
            f"the state store at {hide_password(url)} is at revision {current}, newer than this "
            f"release's newest ({head_revision()})",
            "run the gpulease release that migrated it, or downgrade the store with that release before "
            "running this one",
        )


def require_current(url: str) -> None:
    """Refuse a store that is missing, empty, or at another revision than this release's newest."""
    require_existing(url)
    current, head = current_revision(url), head_revision()
    require_known(url=url, current=current)
    if current is None:
        raise StoreUnusable(
            f"no state store at {hide_password(url)} (the database is empty)",
            f"run `gpulease db upgrade` to create one, or fix {FIX_URL}",
        )
    if current != head:
        raise StoreUnusable(
            f"the state store at {hide_password(url)} is at revision {current}, behind this release's "
            f"newest ({head})",
            "run `gpulease db upgrade`",
        )


@contextmanager
def store_errors(*, url: str, doing: str) -> Iterator[None]:
    """Turn a failure of the store inside the block into StoreUnusable.

    `doing` says what failed, naming the store as {store}: "list leases in {store}".
    """
    try:
        yield
    except StoreUnusable:
        raise
    except CommandError as exc:
        raise StoreUnusable(
            *_message(url, doing, _first_line(exc), "use head (this release's newest, "
                      f"{head_revision()}) or another revision this release knows")
        ) from None
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreUnusable(
            *_message(url, doing, f"its database driver is not available ({_first_line(exc)})",
                      f"use sqlite:///PATH or postgresql+psycopg://USER@HOST:5432/DB in {FIX_URL}")
        ) from None
    except ArgumentError as exc:
        raise StoreUnusable(
            *_message(url, doing, f"the URL cannot be used ({_first_line(exc)})",
                      f"write sqlite:///PATH or postgresql+psycopg://USER@HOST:5432/DB in {FIX_URL}")
        ) from None
    except OperationalError as exc:
        raise StoreUnusable(
            *_message(url, doing, _first_line(exc.orig or exc),
                      f"check that the database is running and reachable there, and that {FIX_URL} is right")
        ) from None
    except DBAPIError as exc:
        raise StoreUnusable(
            *_message(url, doing, _first_line(exc.orig or exc),
                      "`gpulease db current` says whether the store's schema is this release's")
        ) from None
    except SQLAlchemyError as exc:
        raise StoreUnusable(*_message(url, doing, _first_line(exc), f"check {FIX_URL}")) from None


def _message(url: str, doing: str, why: str, fix: str) -> tuple[str, str]:
    # Drivers' messages name the host and user, not the password; make sure of it anyway.
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        why = why.replace(str(password), "***")
    store = f"the state store at {hide_password(url)}"
    return f"cannot {doing.replace('{store}', store)}: {why}", fix


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
