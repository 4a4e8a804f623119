"""Local Ray binds loopback only and uses token auth."""

import ipaddress
import os


def test_local_ray_is_on_loopback_with_token_auth(ray_local):
    nodes = ray_local.nodes()
    assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
    assert os.environ["RAY_AUTH_MODE"] == "token"
    gcs = ray_local.get_runtime_context().gcs_address
    assert gcs.startswith("127.0.0.1:")


def test_ray_processes_listen_on_loopback_only(ray_local):
    import psutil

    # Only this session's processes: other Ray instances on the host are not ours to judge.
    session = ray_local._private.worker.global_worker.node.session_name
    ray_pids = {p.pid for p in psutil.process_iter(["name", "cmdline"]) if session in " ".join(p.info["cmdline"] or [])}
    assert ray_pids, "no Ray processes found"
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in ray_pids
    ]
    assert listening
    assert [c for c in listening if not _is_loopback(c.laddr.ip)] == []


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_tasks_get_one_thread_per_cpu(ray_local):
    @ray_local.remote(num_cpus=1)
    def threads():
        import torch

        return torch.get_num_threads()

    assert ray_local.get(threads.remote()) == 1


def test_state_api_answers_inside_the_cluster(ray_local):
    # Ray Train's placement-group cleaner polls it from an actor; without the dashboard, or with
    # more than one Ray on the host and no address, every poll fails.
    @ray_local.remote(num_cpus=0)
    def node_ips():
        from ray.util.state import list_nodes

        return [n.node_ip for n in list_nodes()]

    assert ray_local.get(node_ips.remote()) == ["127.0.0.1"]
    assert "RAY_API_SERVER_ADDRESS" not in os.environ
