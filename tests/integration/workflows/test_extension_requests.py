"""Each extension request past the caps has its own card, and Allow and Deny answer that
request only: the first decision on it wins, and a decision on one request neither blocks nor
answers another of the same lease."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from leases.errors import AlreadyDecided, DomainError
from leases.models import AuditEvent, Lease
from leases.records import record_event
from leases.store import session_scope
from tests.integration.workflows.conftest import roomy_policy
from tests.integration.workflows.test_pipeline import request
from workflows import api

FOUR_HOURS, ONE_DAY = timedelta(hours=4), timedelta(days=1)
APPROVERS = frozenset({"S0GPUAPPROVERS"})  # U0APPROVER2 approves through the group


def _running(make_runtime):
    """A running lease whose every extension needs an approver; return (runtime, lease id)."""
    rt = make_runtime(policy=roomy_policy(extensions={"max_extensions": 0, "max_total_duration": "30d"}))
    s = api.submit(request())
    rt.queue.drain()
    return rt, s.lease_id


def _ask(rt, lease_id: str, by: timedelta) -> int:
    """Ask for an extension as the requester; return the request its new card names."""
    assert api.extend(lease_id=lease_id, actor="U0ALICE", by=by).outcome == "approval-required"
    rt.queue.drain()
    card = [s.notice for s in rt.notifier.sent if s.notice.kind == "extension.requested"][-1]
    assert card.data["by_seconds"] == int(by.total_seconds())
    return card.data["request"]


def _extensions(rt, lease_id: str) -> int:
    with session_scope(rt.engine) as session:
        return session.get(Lease, lease_id).extensions


def test_each_card_names_its_own_request(make_runtime):
    rt, lease_id = _running(make_runtime)
    a, b = _ask(rt, lease_id, FOUR_HOURS), _ask(rt, lease_id, ONE_DAY)
    with session_scope(rt.engine) as session:
        asked = session.exec(select(AuditEvent.id).where(AuditEvent.lease_id == lease_id,
                                                         AuditEvent.action == "lease.extension_requested")).all()
    assert sorted(asked) == [a, b] and a != b


@pytest.mark.parametrize("named", [True, False], ids=["card-names-request", "card-shows-length-only"])
def test_denying_one_card_leaves_another_open_request_to_be_granted(make_runtime, named):
    rt, lease_id = _running(make_runtime)
    a, b = _ask(rt, lease_id, FOUR_HOURS), _ask(rt, lease_id, ONE_DAY)
    api.deny_extension(lease_id=lease_id, approver="U0APPROVER1", by=FOUR_HOURS, expected_extensions=0,
                       request_id=a if named else None)
    done = api.decide_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=ONE_DAY, expected_extensions=0,
                                request_id=b if named else None)
    assert done.outcome == "extended" and _extensions(rt, lease_id) == 1


@pytest.mark.parametrize("named", [True, False], ids=["card-names-request", "card-shows-length-only"])
def test_a_denied_card_is_not_granted_when_another_request_is_open(make_runtime, named):
    rt, lease_id = _running(make_runtime)
    a = _ask(rt, lease_id, FOUR_HOURS)
    api.deny_extension(lease_id=lease_id, approver="U0APPROVER1", by=FOUR_HOURS, expected_extensions=0,
                       request_id=a if named else None)
    b = _ask(rt, lease_id, ONE_DAY)
    with pytest.raises(AlreadyDecided, match="<@U0APPROVER1> denied this extension of alice-nb already"):
        api.decide_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=FOUR_HOURS, expected_extensions=0,
                             request_id=a if named else None)
    assert _extensions(rt, lease_id) == 0
    api.deny_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=ONE_DAY, expected_extensions=0,
                       request_id=b if named else None)
    rt.queue.drain()
    assert rt.notifier.kinds("requester").count("lease.extension_denied") == 2


def test_the_same_length_asked_again_after_a_denial_is_a_request_of_its_own(make_runtime):
    rt, lease_id = _running(make_runtime)
    first = _ask(rt, lease_id, ONE_DAY)
    api.deny_extension(lease_id=lease_id, approver="U0APPROVER1", by=ONE_DAY, request_id=first)
    again = _ask(rt, lease_id, ONE_DAY)
    assert again != first
    with pytest.raises(AlreadyDecided, match="denied this extension"):  # the first card, clicked late
        api.decide_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=ONE_DAY, request_id=first)
    assert api.decide_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=ONE_DAY,
                                request_id=again).outcome == "extended"
    with pytest.raises(AlreadyDecided, match="<@U0APPROVER2> allowed this extension of alice-nb already"):
        api.deny_extension(lease_id=lease_id, approver="U0APPROVER1", by=ONE_DAY, request_id=again)
    assert _extensions(rt, lease_id) == 1


def test_a_card_naming_no_request_of_the_lease_is_refused(make_runtime):
    rt, lease_id = _running(make_runtime)
    asked = _ask(rt, lease_id, ONE_DAY)
    with pytest.raises(DomainError, match="does not match an extension request of alice-nb"):
        api.decide_extension(lease_id=lease_id, approver="U0APPROVER1", by=ONE_DAY, request_id=asked + 1000)
    with pytest.raises(DomainError, match="does not match"):  # the length is not the request's
        api.deny_extension(lease_id=lease_id, approver="U0APPROVER1", by=FOUR_HOURS, request_id=asked)
    with pytest.raises(DomainError, match="has not asked to extend alice-nb by 4h"):
        api.deny_extension(lease_id=lease_id, approver="U0APPROVER1", by=FOUR_HOURS)
    assert _extensions(rt, lease_id) == 0


def test_a_denial_recorded_before_denials_named_their_request_still_answers_it(make_runtime):
    rt, lease_id = _running(make_runtime)
    asked = _ask(rt, lease_id, ONE_DAY)
    with session_scope(rt.engine) as session:  # as the store holds denials made before this release
        record_event(session, actor="U0APPROVER1", action="lease.extension_denied", now=rt.now(), lease_id=lease_id,
                     data={"by_seconds": int(ONE_DAY.total_seconds()), "extensions": 0})
    with pytest.raises(AlreadyDecided, match="<@U0APPROVER1> denied"):
        api.decide_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=ONE_DAY, request_id=asked)
    later = _ask(rt, lease_id, FOUR_HOURS)  # a request after it is open
    assert api.decide_extension(lease_id=lease_id, approver="U0APPROVER2", approver_groups=APPROVERS, by=FOUR_HOURS,
                                request_id=later).outcome == "extended"
