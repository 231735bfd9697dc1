"""Durations as people write them, and settings from the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.durations import format_duration, format_moment, parse_duration
from config.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("3600", timedelta(hours=1)),
        (60, timedelta(minutes=1)),
        ("2D", timedelta(days=2)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3 days", "d3", "3x", "-1h", "1.5h", True])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_then_parse_round_trips(seconds):
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


def test_a_span_a_fraction_of_a_second_short_shows_whole():
    assert format_duration(timedelta(days=47, hours=8) - timedelta(microseconds=300_000)) == "6w5d8h"
    assert format_duration(timedelta(seconds=89.6)) == "1m30s"


def test_settings_defaults_are_the_embedded_setup(monkeypatch):
    for name in ("GPULEASE_DATABASE_URL", "GPULEASE_BROKER_URL", "GPULEASE_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///./gpulease.db"
    assert settings.broker_url == "memory://"
    assert settings.policy_file.name == "policy.yaml"


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("GPULEASE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("GPULEASE_SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("GPULEASE_KUBE_RETRY_ATTEMPTS", "3")
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.slack_bot_token.get_secret_value() == "xoxb-1"
    assert "xoxb-1" not in repr(settings)
    assert settings.kube_retry_attempts == 3


def test_bad_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv("GPULEASE_KUBE_RETRY_ATTEMPTS", "zero")
    monkeypatch.setenv("GPULEASE_DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "GPULEASE_KUBE_RETRY_ATTEMPTS" in str(err.value)
    assert "GPULEASE_DATABASE_URL: Value error, only SQLite" in str(err.value)


def test_moments_are_shown_in_utc_to_the_minute():
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 12, 2, 17, 5, 59, tzinfo=UTC)
    assert format_moment(moment) == "2026-12-02 17:05 UTC"
    assert format_moment(moment.astimezone(timezone(timedelta(hours=-5)))) == "2026-12-02 17:05 UTC"
    assert format_moment(moment.timestamp()) == "2026-12-02 17:05 UTC"


@pytest.mark.parametrize("text", ["99999999999d", "3651d", "315360001", 10**30, 1e300])
def test_parse_duration_refuses_more_than_ten_years_with_a_value_error(text):
    with pytest.raises(ValueError, match=r"too long: at most 3650d \(10 years\); write a shorter one"):
        parse_duration(text)


@pytest.mark.parametrize("text", [float("inf"), float("nan")])
def test_parse_duration_refuses_infinite_numbers(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_ten_years_is_still_a_duration():
    assert parse_duration("3650d") == parse_duration("521w3d") == timedelta(days=3650)


@pytest.mark.parametrize(("given", "level"), [("debug", "DEBUG"), ("Warning", "WARNING"), (" error ", "ERROR")])
def test_log_level_is_read_in_any_case(monkeypatch, given, level):
    monkeypatch.setenv("GPULEASE_LOG_LEVEL", given)
    assert load_settings().log_level == level


@pytest.mark.parametrize("given", ["LOUD", "", "10", "warn ing"])
def test_unknown_log_level_names_the_variable(monkeypatch, given):
    monkeypatch.setenv("GPULEASE_LOG_LEVEL", given)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert f"GPULEASE_LOG_LEVEL: Value error, {given!r} is not a log level; use one of DEBUG, INFO" in str(err.value)
