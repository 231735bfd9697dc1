"""Database and broker URLs are shown without their passwords."""

from __future__ import annotations

import pytest

from gpulease.redact import hide_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://root:S3CRET-PW@db:5432/gpulease", "postgresql+psycopg://root:***@db:5432/gpulease"),
        ("postgresql+psycopg://root:S3CRET-PW@db/g?password=S3CRET-PW&sslmode=require",
         "postgresql+psycopg://root:***@db/g?password=hidden&sslmode=require"),
        ("postgresql://u:a%2FS3CRET-PW@db/g", "postgresql://u:***@db/g"),
        ("postgresql:S3CRET-PW", "<a database URL that cannot be parsed>"),
        ("sqlite:///./gpulease.db", "sqlite:///./gpulease.db"),
        ("redis://:S3CRET-PW@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:S3CRET-PW@redis:6380/1?ssl_cert_reqs=required", "rediss://user:***@redis:6380/1"),
        ("sentinel://:S3CRET-PW@s1:26379;sentinel://:S3CRET-PW@s2:26379",
         "sentinel://:***@s1:26379/;sentinel://:***@s2:26379/"),
        ("redis://:S3CRET-PW@redis:port/0", "<a broker URL that cannot be parsed>"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("memory://", "memory://"),
    ],
)
def test_passwords_are_hidden(url, shown):
    assert hide_password(url) == shown
    assert "S3CRET" not in hide_password(url)
