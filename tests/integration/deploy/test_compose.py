"""docker-compose.yml: valid against the Compose Specification schema, and the production
shape it promises (services, health checks, the one-shot migration first, volumes, every
variable documented in deploy/compose.env.example, commands the programs accept).

The schema, compose_spec.json beside this file, is the Compose Specification's JSON schema
as the PyPI package docker-compose 1.29.2 (Apache-2.0) ships it, unmodified, at
compose/config/compose_spec.json (no newer copy is in any PyPI package; compose-spec,
compose-pydantic and compose-viz ship bindings or generated models, not the schema). It is
the schema of May 2021, so docker-compose.yml keeps to what that knows, which today's
Compose still accepts. Refresh it with
    pip download --no-deps docker-compose==1.29.2 && unzip -p docker_compose-1.29.2-*.whl \\
        compose/config/compose_spec.json > tests/integration/deploy/compose_spec.json
and update SCHEMA_SHA256. Compose validates with a draft-07 validator and without format
checks (its durations are "10s", not ISO 8601), and so does this test.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from config.settings import Settings
from tests.integration.deploy.commands import check_gpulease_args, check_probe_args
from tests.integration.deploy.conftest import DEPLOY, ROOT

SCHEMA = Path(__file__).with_name("compose_spec.json")
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "compose.env.example"
GPULEASE_SERVICES = ("migrate", "bot", "worker", "beat")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator().iter_errors(doc)]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute ${VAR}, ${VAR:-default} and ${VAR:?error} as Compose does."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name, "")
        if op == ":?" and not value:
            raise KeyError(f"{name}: {arg}")
        return value or (arg if op == ":-" else "")

    return VARIABLE.sub(substitute, text)


def example_env(*, commented: bool = True) -> dict[str, str]:
    """Return the variables deploy/compose.env.example sets (with the commented-out ones)."""
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?([A-Z][A-Z0-9_]*)=(.*)$" if commented else r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            env[match.group(1)] = match.group(2)
    return env


def test_the_vendored_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_validates_against_the_compose_specification() -> None:
    assert errors(compose()) == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["services"]["bot"].update(healtcheck={"test": ["CMD", "true"]}), "healtcheck"),
        (lambda d: d["services"]["bot"]["depends_on"]["migrate"].update(condition="service_done"), "service_done"),
        (lambda d: d.update(service={}), "service"),
        (lambda d: d["services"]["worker"].update(tmpfs=7), "7"),
    ],
)
def test_the_schema_check_can_fail(change, needle) -> None:
    doc = copy.deepcopy(compose())
    change(doc)
    found = errors(doc)
    assert found and any(needle in e for e in found), found


def test_services_and_the_migration_first() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "migrate", "bot", "worker", "beat", "flower"} <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("bot", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    assert services["bot"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
    assert any(str(p).endswith(":3000") for p in services["bot"]["ports"])


def test_every_long_running_service_has_a_health_check_that_the_others_can_wait_for() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name == "migrate":
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        for dependency, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] == "service_healthy":
                assert services[dependency].get("healthcheck", {}).get("test"), (name, dependency)


def test_commands_and_checks_are_what_the_programs_accept() -> None:
    services = compose()["services"]
    for name in GPULEASE_SERVICES:
        check_gpulease_args(services[name]["command"])
    for service in services.values():
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[1:2] == ["gpulease-probe"]:
            check_probe_args(test[2:])
    beat = services["beat"]
    schedule = beat["command"][beat["command"].index("--schedule-file") + 1]
    assert beat["healthcheck"]["test"][3] == schedule
    assert any(v.endswith(":" + str(Path(schedule).parent)) for v in beat["volumes"]), "the schedule is not on a volume"


def test_volumes_keep_the_data() -> None:
    doc = compose()
    declared = set(doc["volumes"])
    used = set()
    for service in doc["services"].values():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if not source.startswith(("$", ".", "/", "~")):
                used.add(source)
    assert used == declared
    assert "postgres-data:/var/lib/postgresql/data" in doc["services"]["postgres"]["volumes"]
    assert "redis-data:/data" in doc["services"]["redis"]["volumes"]


def test_gpulease_containers_are_locked_down_and_stores_are_not_published() -> None:
    services = compose()["services"]
    for name in (*GPULEASE_SERVICES, "flower"):
        service = services[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name
    worker = services["worker"]
    assert worker["environment"]["PROMETHEUS_MULTIPROC_DIR"] in worker["tmpfs"]
    for name in ("postgres", "redis", "worker", "beat", "migrate"):
        assert not services[name].get("ports"), f"{name} must not be published"
    for name in ("bot", "flower"):
        for port in services[name]["ports"]:
            assert interpolate(str(port), {}).startswith("127.0.0.1:"), f"{name} is published beyond this machine"
    for name, service in services.items():
        image = service.get("image", "")
        if "build" not in service:
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: pin {image}"


def test_every_variable_is_documented_and_every_setting_exists() -> None:
    text = COMPOSE.read_text()
    documented = example_env()
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    assert not used - set(documented), f"document in {ENV_EXAMPLE.name}: {sorted(used - set(documented))}"
    settings = {f"GPULEASE_{name.upper()}" for name in Settings.model_fields}
    named = {n for n in (*documented, *re.findall(r"\b(GPULEASE_[A-Z_]+)\b", text)) if n.startswith("GPULEASE_")}
    assert not named - settings, f"not gpulease settings: {sorted(named - settings)}"
    # An empty setting would override its default with '': only those compose refuses empty
    # (${NAME:?...}) may be left for the reader to fill.
    required = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) == ":?"}
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.startswith("GPULEASE_") and not value:
            assert name in required, f"{line}: give it a value or comment it out"


def test_the_wiring_gives_valid_settings(tmp_path: Path) -> None:
    """Filled in as the example says, the environment each gpulease service gets is valid."""
    env = example_env(commented=False) | {"POSTGRES_PASSWORD": "0123abcd", "FLOWER_BASIC_AUTH": "admin:pw",
                           "GPULEASE_SLACK_BOT_TOKEN": "xoxb-1", "GPULEASE_SLACK_SIGNING_SECRET": "s"}
    env = {k: v for k, v in env.items() if v}
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    for name in GPULEASE_SERVICES:
        service = doc["services"][name]
        assert service["env_file"] == ".env"
        merged = {k: v for k, v in env.items() if k.startswith("GPULEASE_")} | service["environment"]
        values = {k.removeprefix("GPULEASE_").lower(): v for k, v in merged.items() if k.startswith("GPULEASE_")}
        settings = Settings(_env_file=None, **values)
        assert settings.database_url == "postgresql+psycopg://gpulease:0123abcd@postgres:5432/gpulease"
        assert settings.broker_url == "redis://redis:6379/0"
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", [])}
        if name != "beat":
            assert (ROOT / mounts[str(settings.policy_file)]).is_file(), name
    assert doc["services"]["worker"]["environment"]["GPULEASE_KUBECONFIG"] == "/etc/gpulease/kubeconfig"
    assert any(v.endswith(":/etc/gpulease/kubeconfig:ro") for v in doc["services"]["worker"]["volumes"])
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(COMPOSE.read_text(), {k: v for k, v in env.items() if k != "POSTGRES_PASSWORD"})
