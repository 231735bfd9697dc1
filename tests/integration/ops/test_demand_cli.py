"""`gpulease demand` against the sandbox cluster and a store with recent requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leases.records import ensure_team
from leases.store import make_engine, session_scope, upgrade
from sandbox.kube import KubeSandbox
from tests.integration.history import add_past_leases

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def stack(tmp_path):
    db = f"sqlite:///{tmp_path / 'gpulease.db'}"
    upgrade(db)
    with KubeSandbox(port=0) as kube:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
        env.update({"GPULEASE_DATABASE_URL": db, "GPULEASE_KUBE_API_URL": kube.url})
        yield env, db


def _approved(db: str, *, tier: str, count: int, over: timedelta) -> None:
    now = datetime.now(UTC)
    engine = make_engine(db)
    with session_scope(engine) as session:
        ensure_team(session, name="ml-research", now=now)
        session.flush()
        add_past_leases(session, cluster="sandbox", tier=tier, count=count, over=over, now=now)
    engine.dispose()


def demand(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpulease", "demand", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_demand_shows_what_recent_requests_ask_and_what_a_node_is_worth(stack):
    env, db = stack
    _approved(db, tier="h100-full", count=60, over=timedelta(hours=12))
    result = demand(env, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] | {"window_h": None} == {
        "cluster": "sandbox", "pricing": True, "in_force": True, "requests": 60, "min_requests": 30,
        "window_h": None,
    }
    tiers = {t["tier"]: t for t in report["tiers"]}
    full = tiers["h100-full"]
    # 60 leases of 2 GPUs for 8 h over 12 h: about 5 an hour, 80 GPUs asked (decay weighs the
    # recent ones more), far beyond the sandbox's one whole-GPU node.
    assert full["requests"] == 60 and full["mean_units"] == 2.0 and full["mean_duration_h"] == 8.0
    assert 3 < full["rate_per_h"] < 8 and full["offered_gpus"] > 40
    assert full["pool_gpus"] == 8.0 and full["node_gpus"] == 8 and full["one_more_node_per_h"] > 0.3
    assert not full["mix_changed"]  # steady for 12 h: the whole window speaks for it
    assert tiers["h100-1g"] | {"pool_gpus": None} == {
        "tier": "h100-1g", "requests": 0, "rate_per_h": 0.0, "mean_units": None, "mean_duration_h": None,
        "mix_changed": False, "offered_gpus": 0.0, "pool_gpus": None, "accepted_per_h": 0.0, "node_gpus": 8,
        "one_more_node_per_h": 0.0,
    }


def test_demand_says_which_tier_follows_a_change_of_mix(stack):
    env, db = stack
    _approved(db, tier="h100-3g", count=48, over=timedelta(hours=24))
    _approved(db, tier="h100-full", count=20, over=timedelta(hours=2))  # new, in a rush
    tiers = {t["tier"]: t for t in json.loads(demand(env, "--json").stdout)["tiers"]}
    assert tiers["h100-full"]["mix_changed"] and not tiers["h100-3g"]["mix_changed"]
    # Ten an hour for 2 hours, read over the last hours (a 4 h half-life): about 3 an hour,
    # where the day-long window would say under 1.
    assert 2 < tiers["h100-full"]["rate_per_h"] < 10
    text = " ".join(demand(env).stdout.split())
    assert "recent (mix changed)" in text


def test_demand_says_when_it_is_still_learning(stack):
    env, db = stack
    _approved(db, tier="h100-3g", count=5, over=timedelta(hours=6))
    result = demand(env)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "still learning: 5 requests seen" in text and "h100-3g" in text
    assert json.loads(demand(env, "--json").stdout)["status"]["in_force"] is False


def test_demand_names_a_bad_setting(stack):
    env, _ = stack
    result = demand(env | {"GPULEASE_KUBE_API_URL": "http://127.0.0.1:1"})
    assert result.returncode == 1
    assert "cannot read the cluster" in result.stderr
