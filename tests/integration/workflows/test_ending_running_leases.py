"""Ending a running lease: who may release it, what a second release or revoke says, and what
its owner is told when it is gone."""

from __future__ import annotations

import pytest
from sqlmodel import select

from leases.errors import AlreadyDecided, NotAuthorised
from leases.models import AuditEvent
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api
from workflows.steps import reclaiming
from workflows.steps.common import SYSTEM


def _reclaiming_events(rt, lease_id: str) -> list[str]:
    with session_scope(rt.engine) as session:
        return list(session.exec(
            select(AuditEvent.actor).where(AuditEvent.lease_id == lease_id,
                                           AuditEvent.to_state == LeaseState.RECLAIMING)
        ).all())


def test_a_lease_being_reclaimed_is_refused_to_a_stranger_and_a_second_release_changes_nothing(make_runtime):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    assert api.release(namespace="alice-nb", actor="U0ALICE") == LeaseState.RECLAIMING
    rt.queue.pending.clear()  # the reclaim has not run yet: the lease stays reclaiming

    with pytest.raises(NotAuthorised, match="only the requester or an admin"):
        api.release(namespace="alice-nb", actor="U0BOB")
    with pytest.raises(AlreadyDecided, match="alice-nb is being reclaimed already; you get a receipt"):
        api.release(namespace="alice-nb", actor="U0ALICE")
    with pytest.raises(AlreadyDecided, match="its owner <@U0ALICE> gets a receipt"):
        api.revoke(namespace="alice-nb", actor="U0ADMIN", reason="over budget")
    assert list(rt.queue.pending) == []  # nothing enqueued again
    assert _reclaiming_events(rt, s.lease_id) == ["U0ALICE"]

    # A sweep that read the lease as running before the release goes on quietly.
    assert reclaiming.start_reclaim(rt, lease_id=s.lease_id, actor=SYSTEM, reason="expired") == "reclaiming"
    rt.queue("reclaim", s.lease_id)
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    with pytest.raises(NotAuthorised):
        api.release(lease_id=s.lease_id, actor="U0BOB")
    with pytest.raises(AlreadyDecided, match="alice-nb is reclaimed already"):
        api.release(lease_id=s.lease_id, actor="U0ALICE")


def test_a_lease_that_ended_cannot_be_marked_in_use(make_runtime):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    api.mark_busy(lease_id=s.lease_id, actor="U0ALICE")  # running: noted
    api.release(lease_id=s.lease_id, actor="U0ALICE")
    with pytest.raises(AlreadyDecided, match="alice-nb is reclaiming already"):
        api.mark_busy(lease_id=s.lease_id, actor="U0ALICE")
    rt.queue.drain()
    with pytest.raises(NotAuthorised, match="only the requester"):
        api.mark_busy(lease_id=s.lease_id, actor="U0BOB")
    with pytest.raises(AlreadyDecided, match="alice-nb is reclaimed already"):
        api.mark_busy(lease_id=s.lease_id, actor="U0ALICE")
    with session_scope(rt.engine) as session:
        marked = session.exec(select(AuditEvent).where(AuditEvent.lease_id == s.lease_id,
                                                       AuditEvent.action == "lease.marked_busy")).all()
    assert len(marked) == 1


def test_the_receipt_of_a_revoked_lease_names_the_admin_and_gives_the_reason(make_runtime):
    rt = make_runtime()
    revoked = api.submit(request())
    released = api.submit(request(namespace="alice-two"))
    rt.queue.drain()
    api.revoke(namespace="alice-nb", actor="U0ADMIN", reason="over budget <!channel>")
    api.release(namespace="alice-two", actor="U0ALICE")
    rt.queue.drain()
    receipts = {n.notice.lease["namespace"]: n.notice for n in rt.notifier.sent if n.notice.kind == "lease.reclaimed"}
    receipt = receipts["alice-nb"]
    assert receipt.text.startswith("alice-nb was revoked by <@U0ADMIN>: over budget <!channel>. Receipt: ")
    # Carried as typed: the message escapes it where it shows it.
    assert (receipt.data["revoked_by"], receipt.data["reason"]) == ("U0ADMIN", "over budget <!channel>")
    assert receipts["alice-two"].text.startswith("alice-two was reclaimed. Receipt: ")
    assert "revoked_by" not in receipts["alice-two"].data
    assert state_of(rt, revoked.lease_id) is state_of(rt, released.lease_id) is LeaseState.RECLAIMED


def test_a_revoke_without_a_reason_still_names_the_admin(make_runtime):
    rt = make_runtime()
    api.submit(request())
    rt.queue.drain()
    api.revoke(namespace="alice-nb", actor="U0ADMIN")
    rt.queue.drain()
    [receipt] = [n.notice for n in rt.notifier.sent if n.notice.kind == "lease.reclaimed"]
    assert receipt.text.startswith("alice-nb was revoked by <@U0ADMIN>. Receipt: ")
