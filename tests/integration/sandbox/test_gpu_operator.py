"""The simulated GPU Operator: MIG and time-slicing reconfiguration through node labels."""

from __future__ import annotations

from kubernetes import watch

from .waiting import wait_until

NODE = "gpu-h100-1g-0"
MIG = "nvidia.com/mig.config"
STATE = "nvidia.com/mig.config.state"


def set_label(core, node: str, key: str, value: str | None) -> None:
    core.patch_node(node, {"metadata": {"labels": {key: value}}})


def labels(kube, node: str = NODE) -> dict[str, str]:
    return kube.get("nodes", node)["metadata"]["labels"]


def allocatable(kube, node: str = NODE) -> dict[str, str]:
    return kube.get("nodes", node)["status"]["allocatable"]


def state_is(kube, value: str, node: str = NODE, key: str = STATE):
    return lambda: labels(kube, node).get(key) == value


def gpu_pod(name: str, node: str, gpus: int = 1) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [
                {"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
            ],
        },
    }


def test_mig_change_goes_pending_then_success(kube, core):
    kube.operator_delay = 0.2
    set_label(core, NODE, MIG, "all-3g.40gb")
    current = labels(kube)
    assert current[STATE] == "pending"
    assert current["nvidia.com/gpu.deploy.device-plugin"] == "paused-for-mig-change"
    assert allocatable(kube)["nvidia.com/gpu"] == "56"  # unchanged while pending
    wait_until(state_is(kube, "success"))
    current = labels(kube)
    assert current["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb"
    assert current["nvidia.com/gpu.count"] == "16"
    assert current["nvidia.com/gpu.memory"] == "40320"
    assert current["nvidia.com/gpu.deploy.device-plugin"] == "true"
    assert allocatable(kube)["nvidia.com/gpu"] == "16"
    assert kube.get("nodes", NODE)["status"]["capacity"]["nvidia.com/gpu"] == "16"


def test_mig_disable_drops_instance_labels(kube, core):
    set_label(core, NODE, MIG, "all-disabled")
    wait_until(state_is(kube, "success"))
    current = labels(kube)
    assert current["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert current["nvidia.com/gpu.count"] == "8"
    assert "nvidia.com/gpu.multiprocessors" not in current
    assert "nvidia.com/gpu.slices.gi" not in current
    assert allocatable(kube)["nvidia.com/gpu"] == "8"


def test_watch_sees_pending_then_success(kube, core):
    rv = core.read_node(NODE).metadata.resource_version
    set_label(core, NODE, MIG, "all-2g.20gb")
    states = []
    w = watch.Watch()
    for event in w.stream(
        core.list_node, resource_version=rv, field_selector=f"metadata.name={NODE}", timeout_seconds=5
    ):
        states.append(event["object"].metadata.labels.get(STATE))
        if states[-1] == "success" and "pending" in states:
            w.stop()
    assert states[0] == "success"  # the client's own write, before the operator reacts
    assert "pending" in states and states[-1] == "success"


def test_unknown_config_fails_and_rollback_succeeds(kube, core):
    set_label(core, NODE, MIG, "all-9g.900gb")
    wait_until(state_is(kube, "failed"))
    assert labels(kube)["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert labels(kube)[MIG] == "all-9g.900gb"  # the label stays as the client set it
    assert allocatable(kube)["nvidia.com/gpu"] == "56"
    assert "unknown MIG config" in kube.reconfigure_error(NODE)["mig"]
    set_label(core, NODE, MIG, "all-1g.10gb")  # roll back to what is applied
    assert labels(kube)[STATE] == "success"


def test_config_for_another_gpu_fails(kube, core):
    set_label(core, NODE, MIG, "all-1g.5gb")  # an A100-40GB profile
    wait_until(state_is(kube, "failed"))
    assert "not valid on a H100-80GB" in kube.reconfigure_error(NODE)["mig"]


def test_faulty_node_fails(kube, core):
    kube.set_faulty(NODE)
    set_label(core, NODE, MIG, "all-3g.40gb")
    wait_until(state_is(kube, "failed"))
    assert allocatable(kube)["nvidia.com/gpu"] == "56"
    kube.set_faulty(NODE, False)
    set_label(core, NODE, MIG, "all-7g.80gb")
    wait_until(state_is(kube, "success"))
    assert allocatable(kube)["nvidia.com/gpu"] == "8"


def test_the_mig_manager_ignores_pods_and_destroys_the_devices_of_gpu_pods(kube, core):
    # The real MIG manager does not check pods (reference gpu.md §2): the reconfiguration
    # goes through and every GPU pod on the node, sidecars and init containers too, loses
    # its devices. CPU pods are not touched.
    core.create_namespace({"metadata": {"name": "busy"}})
    core.create_namespaced_pod("busy", gpu_pod("trainer", NODE))
    sidecar = {
        "metadata": {"name": "served"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "initContainers": [
                {
                    "name": "srv",
                    "image": "cuda",
                    "restartPolicy": "Always",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
            "containers": [{"name": "proxy", "image": "envoy"}],
        },
    }
    core.create_namespaced_pod("busy", sidecar)
    web = {
        "metadata": {"name": "web"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "containers": [{"name": "c", "image": "nginx"}]},
    }
    core.create_namespaced_pod("busy", web)
    for name in ("trainer", "served", "web"):
        wait_until(lambda name=name: kube.get("pods", name, namespace="busy")["status"]["phase"] == "Running")
    set_label(core, NODE, MIG, "all-3g.40gb")
    wait_until(state_is(kube, "success"))
    assert kube.reconfigure_error(NODE)["mig"] == ""
    assert allocatable(kube)["nvidia.com/gpu"] == "16"
    for name in ("trainer", "served"):
        status = core.read_namespaced_pod(name, "busy").status
        assert (status.phase, status.reason) == ("Failed", "MIGReconfigured")
        assert "all-3g.40gb" in status.message
    trainer = core.read_namespaced_pod("trainer", "busy").status
    assert trainer.container_statuses[0].state.terminated.exit_code == 1
    assert core.read_namespaced_pod("web", "busy").status.phase == "Running"


def test_a_time_slicing_change_leaves_running_gpu_pods_alone(kube, core):
    node = "gpu-l40s-0"
    core.create_namespace({"metadata": {"name": "shared"}})
    core.create_namespaced_pod("shared", gpu_pod("job", node))
    wait_until(lambda: kube.get("pods", "job", namespace="shared")["status"]["phase"] == "Running")
    set_label(core, node, "nvidia.com/device-plugin.config", "time-sliced-8")
    wait_until(state_is(kube, "success", node, "nvidia.com/device-plugin.config.state"))
    assert core.read_namespaced_pod("job", "shared").status.phase == "Running"


def test_cpu_pods_do_not_block_reconfiguration(kube, core):
    core.create_namespace({"metadata": {"name": "cpu"}})
    pod = {
        "metadata": {"name": "web"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "containers": [{"name": "c", "image": "nginx"}],
        },
    }
    core.create_namespaced_pod("cpu", pod)
    set_label(core, NODE, MIG, "all-3g.40gb")
    wait_until(state_is(kube, "success"))


def test_hanging_node_stays_pending_until_released(kube, core):
    kube.set_hang(NODE)
    set_label(core, NODE, MIG, "all-3g.40gb")
    wait_until(kube.idle)  # the operator's timer has fired and done nothing
    assert labels(kube)[STATE] == "pending"
    kube.set_hang(NODE, False)
    wait_until(state_is(kube, "success"))
    assert allocatable(kube)["nvidia.com/gpu"] == "16"


def test_latest_change_wins(kube, core):
    kube.operator_delay = 0.1
    set_label(core, NODE, MIG, "all-3g.40gb")
    set_label(core, NODE, MIG, "all-2g.20gb")
    wait_until(state_is(kube, "success"))
    wait_until(kube.idle)
    assert labels(kube)["nvidia.com/gpu.product"].endswith("-MIG-2g.20gb")
    assert allocatable(kube)["nvidia.com/gpu"] == "24"


def test_mig_label_on_a_node_without_mig_is_ignored(kube, core):
    set_label(core, "gpu-l40s-0", MIG, "all-1g.10gb")
    wait_until(kube.idle)
    assert STATE not in labels(kube, "gpu-l40s-0")
    assert allocatable(kube, "gpu-l40s-0")["nvidia.com/gpu"] == "16"


def test_time_slicing_change(kube, core):
    node, key, state = (
        "gpu-l40s-0",
        "nvidia.com/device-plugin.config",
        "nvidia.com/device-plugin.config.state",
    )
    set_label(core, node, key, "time-sliced-8")
    wait_until(state_is(kube, "success", node, state))
    assert allocatable(kube, node)["nvidia.com/gpu"] == "32"
    assert labels(kube, node)["nvidia.com/gpu.replicas"] == "8"
    set_label(core, node, key, "time-sliced-16")
    wait_until(state_is(kube, "failed", node, state))
    assert allocatable(kube, node)["nvidia.com/gpu"] == "32"
    set_label(core, node, key, None)  # back to the plugin's default: no sharing
    wait_until(lambda: state not in labels(kube, node))
    assert allocatable(kube, node)["nvidia.com/gpu"] == "4"
    assert labels(kube, node)["nvidia.com/gpu.product"] == "NVIDIA-L40S"
    assert labels(kube, node)["nvidia.com/gpu.sharing-strategy"] == "none"


def test_time_slicing_a_whole_gpu_node(kube, core):
    node = "gpu-h100-full-0"
    set_label(core, node, "nvidia.com/device-plugin.config", "time-sliced-4")
    wait_until(state_is(kube, "success", node, "nvidia.com/device-plugin.config.state"))
    assert labels(kube, node)["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-SHARED"
    assert allocatable(kube, node)["nvidia.com/gpu"] == "32"


def test_hang_and_faulty_over_http(kube, core):
    from .rawhttp import send

    status, _, _ = send(kube.url, "PUT", f"/_sandbox/nodes/{NODE}/faulty", {"faulty": True})
    assert status == 200
    set_label(core, NODE, MIG, "all-3g.40gb")
    wait_until(state_is(kube, "failed"))
    send(kube.url, "PUT", f"/_sandbox/nodes/{NODE}/faulty", {"faulty": False})
    send(kube.url, "PUT", f"/_sandbox/nodes/{NODE}/hang", {"hang": True})
    set_label(core, NODE, MIG, "all-2g.20gb")
    wait_until(kube.idle)
    assert labels(kube)[STATE] == "pending"
    send(kube.url, "PUT", f"/_sandbox/nodes/{NODE}/hang", {"hang": False})
    wait_until(state_is(kube, "success"))
    status, _, body = send(kube.url, "PUT", "/_sandbox/operator", {"delay": 0.5})
    assert status == 200 and kube.operator_delay == 0.5
    status, _, _ = send(kube.url, "PUT", "/_sandbox/nodes/nope/hang", {"hang": True})
    assert status == 404
