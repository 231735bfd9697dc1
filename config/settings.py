"""Process settings from the environment (prefix `GPULEASE_`), read once at start.

Only the composition root (gpulease/) calls `load_settings`; everything else receives the
values it needs as arguments. Nothing else in the project reads os.environ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_POLICY = Path(__file__).parent / "examples" / "policy.yaml"
# The names Python's logging, Celery and gunicorn all accept, in any case.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """Settings from the environment are invalid; the message names each variable."""


class Settings(BaseSettings):
    """Everything the services need that is not policy: where things are and secrets."""

    model_config = SettingsConfigDict(env_prefix="GPULEASE_", extra="ignore", frozen=True)

    database_url: str = Field(
        "sqlite:///./gpulease.db",
        description="SQLAlchemy URL of the state store (SQLite or postgresql+psycopg://...).",
    )
    broker_url: str = Field(
        "memory://",
        description="Celery broker: redis://host:6379/0 in production, memory:// embedded.",
    )
    broker_visibility_timeout: int = Field(
        3600, ge=10, description="Seconds before Redis redelivers a task whose worker vanished."
    )
    policy_file: Path = Field(EXAMPLE_POLICY, description="The policy YAML file.")

    slack_bot_token: SecretStr | None = Field(None, description="xoxb- bot token.")
    slack_signing_secret: SecretStr | None = Field(None, description="Signs Slack requests.")
    slack_app_token: SecretStr | None = Field(None, description="xapp- token for Socket Mode.")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")

    kubeconfig: Path | None = Field(None, description="kubeconfig file (default: ~/.kube/config).")
    kube_api_url: str | None = Field(None, description="API server URL, bypassing kubeconfig.")
    kube_context: str | None = Field(None, description="kubeconfig context to use.")
    kube_in_cluster: bool = Field(False, description="Use the pod's service account.")
    kube_retry_attempts: int = Field(6, ge=1, le=50, description="Attempts per API call.")
    kube_retry_seconds: float = Field(
        60.0, gt=0, description="Upper bound on time spent retrying one API call."
    )
    kube_request_timeout: float = Field(10.0, gt=0, description="Seconds per API request.")

    prometheus_url: str | None = Field(None, description="Prometheus for idle reclamation.")
    gitops_dir: Path | None = Field(None, description="Render bundles here instead of applying.")
    export_dir: Path | None = Field(
        None, description="Save each namespace's objects here (JSON) before it is reclaimed."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    log_level: str = Field("INFO", description="Root log level: DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(
                "only SQLite (sqlite:///path) and PostgreSQL (postgresql+psycopg://...) are supported"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return check_log_level(value)


def check_log_level(value: str) -> str:
    """Return a log level's name in upper case (ValueError naming the known ones otherwise)."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)} (any case)")
    return level


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides taking precedence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "GPULEASE_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
