"""Show a database or broker URL without its password, wherever one is printed or logged.

GPULEASE_DATABASE_URL and GPULEASE_BROKER_URL may carry a password; messages name the store or
broker they are about through `hide_password`, never through the URL as configured. Any
gpulease/ module (the CLI, doctor, wiring) may import this.
"""

from __future__ import annotations

from kombu.utils.url import maybe_sanitize_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
# Schemes SQLAlchemy knows; anything else is a Celery broker URL, which kombu parses.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")


def hide_password(url: str) -> str:
    """Return `url` fit to print: any password replaced by ***; an unparseable URL not at all."""
    scheme = url.partition(":")[0].split("+")[0].lower()
    if scheme in _DATABASE_SCHEMES:
        return _database(url)
    return ";".join(_broker(part) for part in url.split(";"))  # Celery takes failover lists


def _database(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<a database URL that cannot be parsed>"  # where its password is, nobody can say
    if "password" in parsed.query:  # libpq also takes it as ?password=... (a * would be %-escaped)
        parsed = parsed.update_query_dict({"password": "hidden"})
    return parsed.render_as_string(hide_password=True)


def _broker(url: str) -> str:
    if "@" not in url and "?" not in url:
        return url  # no user info, no options: nothing to hide (memory://, redis://host:6379/0)
    try:
        return maybe_sanitize_url(url, mask=MASK)
    except ValueError:
        return "<a broker URL that cannot be parsed>"
