"""Moving a node between tiers, one recorded step at a time, with rollback.

planned → cordoned (no GPU pods, target annotated, old labels saved, `gpulease.io/tier`
taken off) → reconfiguring (GPU Operator labels set) → done (state success, the new
allocatable and the new devices in gpu.product seen, no GPU pod on the node; tier relabelled,
uncordoned). A GPU pod that came onto the node meanwhile is waited out up to the move timeout,
then the node is left cordoned for an admin: neither configuration may be put under it. A
failed reconfiguration or one past the timeout restores the saved configuration labels and stays cordoned while the
operator puts the old configuration back (rolling_back), then gives the node its old tier and
returns it to its pool (rolled_back); if the old configuration does not come back either, the
node gets its old tier but is left cordoned for an admin. The admins are told either way.

While a move is under way its node carries no tier label: a cordon keeps out only the pods
that do not tolerate it, and one that does (or names the node in spec.nodeName) must not find
the node still in the old tier, or take a device of the new geometry and keep it once the node
serves another tier. A node deleted while it moves ends the move (abandoned).

Each call of `advance_move` does one step and returns whether it should be called again (the
task re-queues itself with a short countdown), so no worker blocks while the GPU Operator works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from config.durations import format_duration
from leases.capacity import TierSpec, product_problem
from leases.errors import TemporaryError
from leases.inventory import PRODUCT, read_node
from leases.models import NodeMoveRecord
from leases.ports import Notice
from leases.records import record_event
from leases.store import session_scope
from provisioners import nodes
from provisioners.kube.retry import KubeNotFound
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import SYSTEM, enqueue, logger

FINISHED = ("done", "rolled_back", "abandoned")


@dataclass(frozen=True)
class MoveProgress:
    step: str
    again: bool  # call advance_move again later
    delay: float = 2.0


def _record(session: Session, move_id: int) -> NodeMoveRecord:
    record = session.get(NodeMoveRecord, move_id, with_for_update=True, populate_existing=True)
    if record is None:
        raise LookupError(f"no node move {move_id}")
    return record


def _set_step(
    session: Session, rt: Runtime, record: NodeMoveRecord, step: str, reason: str | None = None
) -> None:
    now = rt.now()
    record.step = step
    record.updated_at = now
    if reason:
        record.reason = reason
    if step in FINISHED:
        record.finished_at = now
    record_event(
        session,
        actor=SYSTEM,
        action=f"node_move.{step}",
        now=now,
        lease_id=record.lease_id,
        reason=reason,
        data={
            "node": record.node,
            "from_tier": record.from_tier,
            "to_tier": record.to_tier,
            "move": record.id,
        },
    )
    logger.info(
        "node_move.%s move=%s node=%s %s→%s %s",
        step,
        record.id,
        record.node,
        record.from_tier,
        record.to_tier,
        reason or "",
        extra={"event": f"node_move.{step}", "node": record.node, "move": record.id},
    )


def advance_move(rt: Runtime, move_id: int) -> MoveProgress:
    """Do the next step of a node move."""
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        step, cluster, node = record.step, record.cluster, record.node
        target = rt.tiers.get(record.to_tier)
        if step in FINISHED:
            return MoveProgress(step, again=False)
    api = rt.kube(cluster)
    if target is None:
        return _finish(rt, move_id, "abandoned", f"tier {record.to_tier} is not in the policy any more")
    steps = {
        "planned": _cordon,
        "cordoned": _reconfigure,
        "reconfiguring": _watch,
        "rolling_back": _watch_rollback,
    }
    if step not in steps:
        raise ValueError(f"node move {move_id} has an unknown step {step!r}")
    try:
        return steps[step](rt, move_id, api, node)
    except KubeNotFound:
        # A node deleted (scaled down, replaced) while it moves: no step can ever succeed, and
        # an unfinished move holds a move slot of its cluster and the waitlist for good.
        if not _gone(rt, api, node):
            raise
        return _finish(rt, move_id, "abandoned", f"node {node} no longer exists")


def _gone(rt: Runtime, api, node: str) -> bool:
    try:
        nodes.get_node(api, node, retry=rt.retry)
    except KubeNotFound:
        return True
    return False


def _cordon(rt: Runtime, move_id: int, api, node: str) -> MoveProgress:
    current = nodes.get_node(api, node, retry=rt.retry)
    if nodes.gpu_pods_on(api, node, retry=rt.retry):
        # GPU pods arrived since the plan: a reconfiguration would wipe their MIG instances.
        return _finish(rt, move_id, "abandoned", "GPU pods are running on the node")
    metadata = current.get("metadata") or {}
    labels = metadata.get("labels") or {}
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        if record.step != "planned":
            return MoveProgress(record.step, again=record.step not in FINISHED, delay=0)
        to_tier = record.to_tier
        ours = (metadata.get("annotations") or {}).get(nodes.TARGET_TIER_ANNOTATION) == to_tier
        if (current.get("spec") or {}).get("unschedulable") and not ours:
            cordoned_by_someone = True
        else:
            cordoned_by_someone = False
            # Only an open node is planned to move: a cordon already on it with our target is
            # this step's own, from an attempt cut short before it was recorded, and a
            # rollback must lift it. That attempt took the tier label off too: the labels it
            # saved are the node's own.
            if not (ours and record.previous):
                record.previous = {
                    "labels": {
                        k: labels.get(k) for k in (nodes.TIER_LABEL, nodes.MIG_CONFIG, nodes.PLUGIN_CONFIG)
                    },
                    "unschedulable": False,
                    "gpus": read_node(current).state.gpus,
                }
    if cordoned_by_someone:
        return _finish(rt, move_id, "abandoned", "the node was cordoned by someone else since the move was planned")
    # Cordon and untier in one write: from now on no pod pinned to the old tier can land here,
    # not even one that tolerates the cordon (kubelet admission checks its node selector).
    nodes.patch_node(
        api,
        node,
        retry=rt.retry,
        unschedulable=True,
        labels={nodes.TIER_LABEL: None},
        annotations={nodes.TARGET_TIER_ANNOTATION: to_tier},
    )
    with session_scope(rt.engine) as session:
        _set_step(session, rt, _record(session, move_id), "cordoned")
    return MoveProgress("cordoned", again=True, delay=0)


def _reconfigure(rt: Runtime, move_id: int, api, node: str) -> MoveProgress:
    if nodes.gpu_pods_on(api, node, retry=rt.retry):
        # A pod slipped in between the check and the cordon: give the node back untouched.
        return _rollback(
            rt, move_id, api, node, "a GPU pod started on the node before it was cordoned", step="abandoned"
        )
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        labels: dict[str, str | None] = {}
        if record.node_config is not None:
            labels[nodes.MIG_CONFIG] = record.node_config
        labels[nodes.PLUGIN_CONFIG] = record.plugin_config  # None removes it: the plugin default
    nodes.patch_node(api, node, retry=rt.retry, labels=labels)
    with session_scope(rt.engine) as session:
        _set_step(session, rt, _record(session, move_id), "reconfiguring")
    return MoveProgress("reconfiguring", again=True)


def _configured(current: dict, spec: TierSpec, gpus: int) -> tuple[str | None, str | None]:
    """Return the node's `mig.config.state` and why it does not serve `spec` with `gpus` GPUs
    yet (None: it does). A `success` or an allocatable left from before a change proves
    nothing when the old and new tiers have as many units per GPU: the product label must
    show the devices too."""
    labels = (current.get("metadata") or {}).get("labels") or {}
    state = labels.get(nodes.MIG_CONFIG_STATE)
    allocatable = int(((current.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu", 0) or 0)
    expected = gpus * spec.units_per_gpu
    if state not in (None, "success"):
        return state, f"state {state}"
    shown = product_problem(product=labels.get(PRODUCT), spec=spec)
    if shown is not None:
        return state, shown
    if allocatable != expected:
        return state, f"allocatable {allocatable}, expected {expected}"
    return state, None


def _watch(rt: Runtime, move_id: int, api, node: str) -> MoveProgress:
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        started = record.updated_at
        gpus = (record.previous or {}).get("gpus", 0)
        target = rt.tiers[record.to_tier]
        mig_config = record.node_config
    state, problem = _configured(nodes.get_node(api, node, retry=rt.retry), target, gpus)
    if mig_config is not None and state == "failed":
        return _rollback(
            rt, move_id, api, node, f"the GPU Operator reports mig.config.state=failed for {mig_config}"
        )
    if problem is None:
        busy = nodes.gpu_pod_names(api, node, retry=rt.retry)
        if busy:
            return _held(rt, move_id, api, node, busy, started=started, tier=target.name)
        nodes.patch_node(
            api, node, retry=rt.retry, unschedulable=False, labels={nodes.TIER_LABEL: target.name}
        )
        nodes.clear_draining(api, node, retry=rt.retry)
        return _finish(rt, move_id, "done", f"{node} serves {target.name} with {gpus * target.units_per_gpu} units")
    if rt.now() - started > rt.move_timeout:
        return _rollback(rt, move_id, api, node, f"no success within {rt.move_timeout} ({problem})")
    return MoveProgress("reconfiguring", again=True)


def _held(
    rt: Runtime, move_id: int, api, node: str, busy: list[str], *, started: datetime, tier: str
) -> MoveProgress:
    """A pod that tolerates the cordon, or names the node, came onto it while it moved. Giving
    the node to the new tier would leave that pod holding one of its devices, and putting the
    old configuration back would destroy the device under it: wait for the pods to end, up to
    the move timeout, then leave the node cordoned and without a tier for an admin."""
    if rt.now() - started <= rt.move_timeout:
        return MoveProgress("reconfiguring", again=True)
    shown = ", ".join(busy[:3]) + (f" and {len(busy) - 3} more" if len(busy) > 3 else "")
    nodes.clear_draining(api, node, retry=rt.retry)
    return _finish(
        rt,
        move_id,
        "abandoned",
        f"GPU pods came onto the node while it moved ({shown}) and were still there after "
        f"{format_duration(rt.move_timeout)}; the node is left cordoned, without a tier, in its new "
        f"configuration: once they have ended, label it gpulease.io/tier={tier} and uncordon it",
    )


def _rollback(
    rt: Runtime, move_id: int, api, node: str, reason: str, *, step: str = "rolled_back"
) -> MoveProgress:
    """Restore the node's saved labels. `rolled_back`: the reconfiguration failed (moves toward
    its tier pause, placing.paused_tiers); the node stays cordoned, still without a tier, while
    the old configuration comes back (`_watch_rollback`, which gives the tier back).
    `abandoned`: nothing was changed yet (a pod came first): the node is given back at once."""
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        previous = record.previous or {}
        old = rt.tiers.get(record.from_tier or "")
        set_mig = record.node_config is not None
    saved = previous.get("labels") or {}
    labels: dict[str, str | None] = {nodes.PLUGIN_CONFIG: saved.get(nodes.PLUGIN_CONFIG)}
    if saved.get(nodes.MIG_CONFIG) is not None:
        labels[nodes.MIG_CONFIG] = saved[nodes.MIG_CONFIG]
    elif set_mig:
        # The node had no mig.config label (the operator's default config left it unset): the
        # one this move set must not stay, so ask for its old tier's, or no MIG at all.
        labels[nodes.MIG_CONFIG] = (old.node_config if old else None) or "all-disabled"
    if step != "rolled_back":
        labels[nodes.TIER_LABEL] = saved.get(nodes.TIER_LABEL)
        nodes.patch_node(
            api, node, retry=rt.retry, labels=labels, unschedulable=bool(previous.get("unschedulable", False))
        )
        nodes.clear_draining(api, node, retry=rt.retry)
        return _finish(rt, move_id, step, reason)
    nodes.patch_node(api, node, retry=rt.retry, labels=labels)
    with session_scope(rt.engine) as session:
        _set_step(session, rt, _record(session, move_id), "rolling_back", reason)
    return MoveProgress("rolling_back", again=True)


def _watch_rollback(rt: Runtime, move_id: int, api, node: str) -> MoveProgress:
    """Give the node back, in its old tier, once its old configuration is back; if that fails
    too, or takes longer than the move timeout, give it its old tier but leave it cordoned for
    an admin (uncordoning it then returns it to its pool)."""
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        started, reason = record.updated_at, record.reason or "the reconfiguration failed"
        previous = record.previous or {}
        old = rt.tiers.get(record.from_tier or "")
    current = nodes.get_node(api, node, retry=rt.retry)
    if old is not None:
        state, problem = _configured(current, old, int(previous.get("gpus", 0)))
    else:  # an unlabelled node: nothing to compare with but the operator's state
        state = ((current.get("metadata") or {}).get("labels") or {}).get(nodes.MIG_CONFIG_STATE)
        problem = None if state in (None, "success") else f"state {state}"
    old_tier = {nodes.TIER_LABEL: (previous.get("labels") or {}).get(nodes.TIER_LABEL)}
    if problem is None:
        nodes.patch_node(
            api,
            node,
            retry=rt.retry,
            labels=old_tier,
            unschedulable=bool(previous.get("unschedulable", False)),
        )
        nodes.clear_draining(api, node, retry=rt.retry)
        return _finish(rt, move_id, "rolled_back", reason)
    if state == "failed" or rt.now() - started > rt.move_timeout:
        why = "it failed too" if state == "failed" else f"not back within {rt.move_timeout}"
        nodes.patch_node(api, node, retry=rt.retry, labels=old_tier)
        return _finish(
            rt,
            move_id,
            "rolled_back",
            f"{reason}; the node stays cordoned: its old configuration did not come back ({why}"
            + (f"; {problem}" if problem else "")
            + "), uncordon it once fixed",
        )
    return MoveProgress("rolling_back", again=True)


def _finish(rt: Runtime, move_id: int, step: str, reason: str) -> MoveProgress:
    now = rt.now()
    with session_scope(rt.engine) as session:
        record = _record(session, move_id)
        if record.step in FINISHED:
            return MoveProgress(record.step, again=False)
        _set_step(session, rt, record, step, reason)
        if step != "done":
            text = f"Moving {record.node} from {record.from_tier} to {record.to_tier}: {step} ({reason})"
            pause = rt.policy.placement.failed_move_pause
            if step == "rolled_back" and pause:
                text += f"; no node moves to {record.to_tier} on {record.cluster} for {format_duration(pause)}"
            outbox.add(
                session,
                key=f"move:{record.id}:{step}",
                target="admins",
                now=now,
                notice=Notice(
                    kind=f"admin.node_move_{step}",
                    text=text,
                    data={"node": record.node, "reason": reason},
                ),
            )
        cluster = record.cluster
    enqueue(rt, "deliver")
    enqueue(rt, "wake_waitlist", cluster)
    return MoveProgress(step, again=False)


def drain(rt: Runtime, cluster: str, node: str, to_tier: str, actor: str = "") -> None:
    """Drain a node: for `to_tier` (taint and annotate, so it empties and can move), or, with no
    tier, cordon it for maintenance (an admin's drain, by `actor`): the node is then the
    admin's, so a drain of the placer's on it ends, or its node would count as on its way to
    the drain's tier for ever."""
    api = rt.kube(cluster)
    if to_tier:
        nodes.set_draining(api, node, to_tier=to_tier, since=rt.now(), retry=rt.retry)
        why = f"emptying for {to_tier}"
    else:
        nodes.clear_draining(api, node, retry=rt.retry)
        nodes.patch_node(api, node, retry=rt.retry, unschedulable=True)
        why = "cordoned by an admin"
    with session_scope(rt.engine) as session:
        record_event(
            session,
            actor=actor or SYSTEM,
            action="node.drain",
            now=rt.now(),
            reason=why,
            data={"cluster": cluster, "node": node, "to_tier": to_tier or None},
        )


def drain_failed(rt: Runtime, cluster: str, node: str, *, actor: str, error: Exception, key: str) -> None:
    """Tell the admins, once per drain (`key`), that an admin's drain of a node failed for good
    or ran out of retries: which node, why, and what to do next."""
    if isinstance(error, KubeNotFound):
        next_step = (f"there is no node {node} on cluster {cluster}: check the name (`gpulease inventory` or "
                     "`kubectl get nodes` lists the nodes) and run `/gpu-admin drain NODE` again")
    elif isinstance(error, TemporaryError):
        next_step = (f"{node} may not be cordoned: run `/gpu-admin drain {node}` again once the cluster "
                     "answers (`gpulease doctor` checks the connection)")
    else:
        next_step = (f"{node} may not be cordoned: fix the cause (e.g. the worker's permission to patch "
                     f"nodes) and run `/gpu-admin drain {node}` again")
    reason = str(error)
    who = f"<@{actor}>'s drain" if actor else "A drain"
    with session_scope(rt.engine) as session:
        added = outbox.add(
            session,
            key=key,
            target="admins",
            now=rt.now(),
            notice=Notice(
                kind="admin.drain_failed",
                text=f"{who} of node {node} on cluster {cluster} failed: {reason}. Next: {next_step}.",
                data={"node": node, "cluster": cluster, "reason": reason},
            ),
        )
        if added:
            record_event(session, actor=actor or SYSTEM, action="node.drain_failed", now=rt.now(),
                         reason=reason, data={"cluster": cluster, "node": node})
    logger.warning(
        "node.drain_failed cluster=%s node=%s error=%s", cluster, node, reason,
        extra={"event": "node.drain_failed", "cluster": cluster, "node": node},
    )
    enqueue(rt, "deliver")


def undrain(rt: Runtime, cluster: str, node: str, reason: str = "") -> None:
    """Give a drained node back to its pool: its destination no longer needs it, or `reason`."""
    nodes.clear_draining(rt.kube(cluster), node, retry=rt.retry)
    with session_scope(rt.engine) as session:
        record_event(
            session,
            actor=SYSTEM,
            action="node.undrain",
            now=rt.now(),
            reason=reason or "drain no longer needed",
            data={"cluster": cluster, "node": node},
        )
