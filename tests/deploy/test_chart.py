"""helm/meow rendered offline with a real helm: lint, schema, Kubernetes and KubeRay validation,
tenancy, RBAC, security and the contract with the control plane's kuberay backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from . import netpol
from .conftest import VALUES
from .tools import (
    CHART,
    ROOT,
    chart_copy,
    helm,
    pod_specs,
    ray_cluster_spec,
    render,
    validate_core,
    validate_custom_resource,
)

RAY_CONTROL_PORTS = (8265, 10001)
MULTI = "multi-tenant-kueue-values.yaml"
SHARED = "shared-volume-values.yaml"


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in by_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("values", VALUES)
def test_helm_lint_passes_strict(chart, values):
    args = ["lint", str(chart), "--strict", *(["-f", str(chart / "ci" / values)] if values else [])]
    assert "1 chart(s) linted, 0 chart(s) failed" in helm(*args).stdout


@pytest.mark.parametrize("values", VALUES)
def test_every_core_object_passes_kubernetes_validate_strict(rendered, values):
    core = [o for o in rendered(values) if not o["apiVersion"].startswith(("ray.io/", "monitoring.coreos.com/", "kueue."))]
    assert len(core) >= 8  # the control plane alone: ServiceAccount, Secrets, ConfigMap, PVCs, Service, Deployment
    for obj in core:
        validate_core(obj)


@pytest.mark.parametrize("values", VALUES)
def test_every_ray_resource_passes_the_kuberay_crd_schema(rendered, values):
    for obj in rendered(values):
        if obj["apiVersion"].startswith("ray.io/"):
            validate_custom_resource(obj)


def test_the_ci_files_cover_every_ray_kind_and_optional_object(rendered):
    kinds = {o["kind"] for v in VALUES for o in rendered(v)}
    assert {"RayJob", "RayService", "LocalQueue", "PodMonitor", "ServiceMonitor", "Ingress", "NetworkPolicy"} <= kinds


def test_a_crd_typo_is_caught(rendered):
    rayjob = json.loads(json.dumps(one(rendered(MULTI), "RayJob")))
    rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParam"] = {}
    with pytest.raises(Exception, match="rayStartParam"):
        validate_custom_resource(rayjob)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "controlPlane.replicas=two"], "want integer"),
        (["--set", "tenants[0].name=team-a", "--set", "tenants[0].quota.gpus=many"], "want integer"),
        (["--set", "controlPlane.replica=2"], "additional properties 'replica' not allowed"),
        (["--set", "iamge.tag=x"], "additional properties 'iamge' not allowed"),
        (["--set", "tenants[0].name=team-a", "--set", "tenants[0].namespace=x"], "'namespace' not allowed"),
        (["--set", "service.port=8265"], "service/port"),
        # One control plane: the rate limiter, submit lock and quota check are per process.
        (["--set", "controlPlane.replicas=2"], "at '/controlPlane/replicas': maximum: got 2, want 1"),
        # Quantities: negative or not a quantity at all.
        (["--set", "tenants[0].name=a", "--set-string", "tenants[0].quota.cpu=-4"], "'/tenants/0/quota/cpu'"),
        (["--set", "tenants[0].name=a", "--set", "tenants[0].quota.cpu=-4"], "'/tenants/0/quota/cpu': minimum"),
        (["--set", "tenants[0].name=a", "--set", "tenants[0].quota.memory=-64Gi"], "'/tenants/0/quota/memory'"),
        (["--set", "tenantDefaults.quota.cpu=lots"], "'/tenantDefaults/quota/cpu'"),
        (["--set", "ray.worker.memory=8 Gi"], "'/ray/worker/memory'"),
        (["--set", "probe.worker.cpu=2cores"], "'/probe/worker/cpu'"),
        (["--set", "controlPlane.resources.limits.memory=-1Gi"], "'/controlPlane/resources/limits/memory'"),
        (["--set", "store.sqlite.size=big"], "'/store/sqlite/size'"),
        # meow-<name> must be a DNS label of at most 63 characters.
        (["--set", f"tenants[0].name={'a' * 59}"], "'/tenants/0/name': maxLength"),
        # Repositories without a tag (a registry port is fine), tags without spaces.
        (["--set", "image.repository=meow/control-plane:0.1.0"], "'/image/repository'"),
        (["--set", "ray.image.repository=registry.example.com:5000/meow/ray:latest"], "'/ray/image/repository'"),
        (["--set", "ray.image.repository=meow/ray@sha256:abc"], "'/ray/image/repository'"),
        (["--set", "image.tag=0.1.0 beta"], "'/image/tag'"),
        (["--set", "ray.image.tag=a b"], "'/ray/image/tag'"),
        # The operator is a separate install: no subchart values.
        (["--set", "kuberay-operator.enabled=true"], "additional properties 'kuberay-operator' not allowed"),
        (["--set", "podSecurityEnforce=privileged"], "'/podSecurityEnforce'"),
    ],
)
def test_wrong_types_and_unknown_keys_make_helm_template_fail(chart, args, message):
    result = helm("template", "meow", str(chart), *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "ingress.enabled=true"], "ingress.tlsSecretName is required"),
        (["--set", "tenantNamespacePrefix=" + "p" * 10, "--set", "tenants[0].name=" + "t" * 55],
         "is longer than 63 characters"),
        (["--set", "tenants[0].name=a", "--set", "networkPolicy.objectStore.ipBlocks[0].cidr=0.0.0.0/0"],
         "holds the cloud metadata endpoint 169.254.169.254"),
        (["--set", "store.type=postgres"], "store.postgres.existingSecret is required"),
        (["--set", "artifacts.type=s3"], "artifacts.s3.bucket is required"),
        (["--set", "probe.enabled=true"], "probe needs at least one entry in tenants"),
        (["--set", "tenants[0].name=a", "--set", "probe.enabled=true"], "probe.unlearnedModel is required"),
        (["--set", "tenants[0].name=a", "--set", "tenants[1].name=a"], 'tenant "a" is listed twice'),
        (["--set", "tenants[0].name=a", "--set", "exampleJob.enabled=true", "--set", "exampleJob.tenant=b"],
         'names tenant "b", which is not in tenants'),
    ],
)
def test_inconsistent_values_fail_with_a_reason(chart, args, message):
    result = helm("template", "meow", str(chart), *args, check=False)
    assert result.returncode != 0 and message in result.stderr


def _walk_schema(schema: dict, path: str = ""):
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from _walk_schema(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from _walk_schema(schema["items"], f"{path}[]")


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "image.repository=registry.example.com:5000/meow/control-plane"],
        ["--set", "ray.image.repository=localhost/meow/ray", "--set", "ray.image.tag=0.1.0-cpu_rc.1"],
        ["--set", f"tenants[0].name={'a' * 58}"],
        ["--set", "tenants[0].name=a", "--set", "tenants[0].quota.cpu=0.5", "--set", "tenants[0].quota.memory=1.5Gi"],
        ["--set", "tenants[0].name=a", "--set-string", "tenants[0].limits.defaultCpu=500m"],
        ["--set", "ray.head.cpu=2", "--set", "ray.head.memory=4096Mi"],
        ["--set", "ingress.enabled=true", "--set", "ingress.allowInsecureHttp=true"],
    ],
)
def test_well_formed_values_still_render(chart, args):
    helm("template", "meow", str(chart), *args)


def test_values_schema_closes_every_object():
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path, node in _walk_schema(schema):
        if node.get("type") != "object":
            continue
        extra = node.get("additionalProperties")
        if "properties" in node:
            assert extra is False, f"{path or 'top level'} accepts unknown keys"
        else:
            # A map with free keys (labels, resources, env): its values are still typed.
            assert isinstance(extra, dict) and "type" in extra, f"{path} is an untyped map"


def test_values_yaml_and_schema_list_the_same_keys():
    """Every key of values.yaml is in the schema, and every key the schema knows has a documented
    default in values.yaml (free maps such as labels and list items excepted)."""

    def compare(values: dict, schema: dict, path: str) -> None:
        properties = schema.get("properties")
        if not properties or not isinstance(values, dict):
            return
        assert set(values) == set(properties), f"{path or 'top level'}: {set(values) ^ set(properties)}"
        for key, sub in properties.items():
            compare(values[key], sub, f"{path}.{key}")

    compare(yaml.safe_load((CHART / "values.yaml").read_text()), json.loads((CHART / "values.schema.json").read_text()), "")


def test_the_values_table_generator_refuses_an_undocumented_key():
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("values_table", CHART / "scripts" / "values_table.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    rows, missing = module.documented_keys("a:\n  # -- documented\n  b: 1\n  c: 2\n# -- whole map\nd:\n  e: 3\n")
    assert [r[0] for r in rows] == ["a.b", "d"] and missing == ["a.c"]


def test_readme_values_table_is_generated_from_values_yaml():
    script = CHART / "scripts" / "values_table.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES)
def test_rbac_is_namespace_scoped_to_tenants(rendered, values):
    objs = rendered(values)
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
    tenants = {n["metadata"]["name"] for n in by_kind(objs, "Namespace")}
    roles = by_kind(objs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == tenants
    for role in roles:
        for rule in role["rules"]:
            if "ray.io" in rule["apiGroups"]:
                assert set(rule["resources"]) <= {"rayjobs", "rayservices", "rayjobs/status", "rayservices/status"}
            else:
                # Everything else is read-only (logs and events of the tenant's own pods).
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    bindings = by_kind(objs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == tenants
    sa = one(objs, "ServiceAccount")["metadata"]
    for b in bindings:
        assert b["roleRef"]["kind"] == "Role"
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]


def test_the_control_plane_can_write_rayjobs_in_every_tenant_namespace_and_nowhere_else(rendered):
    objs = rendered(MULTI)
    tenants = sorted(n["metadata"]["name"] for n in by_kind(objs, "Namespace"))
    assert tenants == ["meow-team-a", "meow-team-b", "meow-team-c"]
    writable = sorted(
        r["metadata"]["namespace"] for r in by_kind(objs, "Role")
        if any("rayjobs" in rule["resources"] and "create" in rule["verbs"] for rule in r["rules"])
    )
    assert writable == tenants


@pytest.mark.parametrize("values", VALUES)
def test_every_container_runs_as_non_root_with_requests_and_limits(rendered, values):
    checked = 0
    for obj in rendered(values):
        for pod in pod_specs(obj):
            pod_ctx = pod.get("securityContext", {})
            containers = pod.get("initContainers", []) + pod["containers"]
            for c in containers:
                ctx = {**pod_ctx, **c.get("securityContext", {})}
                assert ctx.get("runAsNonRoot") is True, (obj["kind"], c["name"])
                assert ctx.get("runAsUser", 1000) != 0
                assert ctx.get("allowPrivilegeEscalation") is False
                assert ctx["capabilities"]["drop"] == ["ALL"]
                assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"][kind]), (obj["kind"], c["name"], kind)
                checked += 1
        if obj["kind"] == "RayService":
            autoscaler = ray_cluster_spec(obj)["autoscalerOptions"]
            assert autoscaler["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= set(autoscaler["resources"]["limits"])
    assert checked >= 1


@pytest.mark.parametrize("values", VALUES)
def test_no_ray_dashboard_or_client_port_is_exposed_outside_the_cluster(rendered, values):
    objs = rendered(values)
    for svc in by_kind(objs, "Service"):
        ports = {p["port"] for p in svc["spec"]["ports"]} | {p.get("targetPort") for p in svc["spec"]["ports"]}
        assert not ports & set(RAY_CONTROL_PORTS), svc["metadata"]["name"]
        assert not svc["spec"].get("externalIPs")
    control_plane = {s["metadata"]["name"] for s in by_kind(objs, "Service")}
    for ingress in by_kind(objs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] in control_plane
    for obj in objs:
        if obj["kind"] in ("RayJob", "RayService"):
            head = ray_cluster_spec(obj)["headGroupSpec"]
            assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress")
            assert ray_cluster_spec(obj)["authOptions"] == {"mode": "token"}
    for quota in by_kind(objs, "ResourceQuota"):
        assert quota["spec"]["hard"]["services.nodeports"] == "0"
        assert quota["spec"]["hard"]["services.loadbalancers"] == "0"


def _pods(ns):
    """Labels of the pods that live in a tenant namespace."""
    return {
        "head": (ns, {"ray.io/node-type": "head", "ray.io/cluster": "c", "meow.dev/tenant": ns}),
        "worker": (ns, {"ray.io/node-type": "worker", "ray.io/cluster": "c", "meow.dev/tenant": ns}),
        # The labels of the chart's submitterPodTemplate (KubeRay adds its own, which vary by version).
        "submitter": (ns, {"app.kubernetes.io/component": "job-submitter", "meow.dev/role": "job-submitter", "meow.dev/tenant": ns}),
    }


def test_network_policy_isolates_tenants_and_ray_control_ports(rendered):
    policies = by_kind(rendered(MULTI), "NetworkPolicy")
    a, b = _pods("meow-team-a"), _pods("meow-team-b")
    allowed = netpol.allowed
    # Inside one tenant's cluster: Ray's own traffic flows, its dashboard and client ports do not.
    assert allowed(policies, a["worker"], a["head"], 6379)
    assert allowed(policies, a["head"], a["worker"], 12345)
    for port in RAY_CONTROL_PORTS:
        assert not allowed(policies, a["worker"], a["head"], port)
        assert not allowed(policies, a["head"], a["head"], port)
    # The submitter reaches its own tenant's head dashboard, and nothing of another tenant.
    assert allowed(policies, a["submitter"], a["head"], 8265)
    assert not allowed(policies, a["submitter"], a["head"], 10001)
    assert not allowed(policies, a["submitter"], b["head"], 8265)
    # No tenant pod reaches another tenant on any port.
    for src in a.values():
        for dst in b.values():
            for port in (6379, 8000, 8080, 8265, 10001, 20000):
                assert not allowed(policies, src, dst, port)
    # Nor any 8265/10001 outside the cluster; egress is default-deny (tests/deploy/test_hardening.py).
    for port in RAY_CONTROL_PORTS:
        assert not allowed(policies, a["worker"], (None, {"ip": "52.216.1.1"}), port)
    # The operator, Prometheus and the control plane get exactly what they need.
    operator, prometheus, control = ("ray-system", {}), ("monitoring", {}), ("meow", {})
    assert allowed(policies, operator, a["head"], 8265)
    assert allowed(policies, prometheus, a["worker"], 8080)
    assert not allowed(policies, prometheus, a["head"], 8265)
    assert allowed(policies, control, a["head"], 8000)
    assert not allowed(policies, control, a["head"], 8265)


def test_the_operator_namespace_is_the_one_allowed_in(chart):
    objs = render(chart, chart / "ci" / MULTI, set_values=("networkPolicy.kuberayOperatorNamespace=platform",))
    policies = by_kind(objs, "NetworkPolicy")
    head = _pods("meow-team-a")["head"]
    assert netpol.allowed(policies, ("platform", {}), head, 8265)
    assert not netpol.allowed(policies, ("ray-system", {}), head, 8265)


def test_tenant_values_fall_back_to_defaults_but_keep_explicit_zeros(rendered):
    objs = rendered(MULTI)
    quotas = {q["metadata"]["namespace"]: q["spec"]["hard"] for q in by_kind(objs, "ResourceQuota")}
    assert quotas["meow-team-a"]["requests.nvidia.com/gpu"] == "2"  # tenantDefaults in the values file
    assert quotas["meow-team-b"]["requests.nvidia.com/gpu"] == "0"  # explicit 0 beats the default of 2
    assert quotas["meow-team-b"]["requests.cpu"] == "64" and quotas["meow-team-a"]["requests.cpu"] == "16"
    for limits in by_kind(objs, "LimitRange"):
        assert limits["spec"]["limits"][0]["default"] == {"cpu": "2", "memory": "4Gi"}


def test_kueue_gives_each_tenant_a_local_queue_and_labels_its_jobs(rendered):
    objs = rendered(MULTI)
    queues = {q["metadata"]["namespace"]: q["spec"]["clusterQueue"] for q in by_kind(objs, "LocalQueue")}
    assert queues == {"meow-team-a": "shared", "meow-team-b": "shared", "meow-team-c": "low-priority"}
    rayjob = one(objs, "RayJob")
    assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "meow"
    assert "suspend" not in rayjob["spec"]  # Kueue's to flip
    assert not by_kind(rendered("minimal-values.yaml"), "LocalQueue")


def test_probe_rayservice_serves_both_models_within_autoscaling_bounds(rendered):
    from meow.serve.config import ServeConfig

    service = one(rendered(MULTI), "RayService")
    assert service["metadata"]["namespace"] == "meow-team-a"
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    (app,) = serve["applications"]
    assert app["import_path"] == "meow.serve.app:build_app"
    config = ServeConfig.model_validate(app["args"])  # what Serve hands build_app
    assert {m.name: m.spec for m in config.models} == {
        "original": "smollm2",
        "unlearned": "s3://meow-runs/meow/team-a/runs/smoke-1/unlearn/model",
    }
    # build_app names a model's deployment `model-<name>`: the bounds must land on those.
    assert {d["name"]: d["autoscaling_config"] for d in app["deployments"]} == {
        f"model-{m}": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4}
        for m in ("original", "unlearned")
    }
    cluster = ray_cluster_spec(service)
    assert cluster["enableInTreeAutoscaling"] is True
    (workers,) = cluster["workerGroupSpecs"]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (1, 4)


def test_a_shared_volume_lets_the_control_plane_read_what_every_tenants_ray_pods_write(rendered, monkeypatch):
    objs = rendered(SHARED)
    root = _settings_from(objs, monkeypatch).resolved_artifact_root()
    namespaces = {"meow", "meow-team-a", "meow-team-b"}
    claims = {
        o["metadata"]["namespace"]: o
        for o in by_kind(objs, "PersistentVolumeClaim")
        if o["metadata"]["name"] == "meow-artifacts"
    }
    volumes = {o["metadata"]["name"]: o for o in by_kind(objs, "PersistentVolume")}
    assert set(claims) == namespaces and len(volumes) == len(namespaces)
    nfs = {"server": "nfs.storage.svc.cluster.local", "path": "/exports/meow"}
    for namespace, claim in claims.items():
        volume = volumes[claim["spec"]["volumeName"]]["spec"]
        # Bound to each other both ways, with no provisioner stepping in.
        assert volume["claimRef"] == {"namespace": namespace, "name": "meow-artifacts"}
        assert claim["spec"]["storageClassName"] == volume["storageClassName"] == ""
        assert volume["nfs"] == nfs and volume["persistentVolumeReclaimPolicy"] == "Retain"
        assert "ReadWriteMany" in volume["accessModes"] and "ReadWriteMany" in claim["spec"]["accessModes"]
    # The control plane mounts its claim at the root; every Ray pod (job and probe) only its
    # tenant's sub-path, at the same place under the root (tests/deploy/test_hardening.py).
    mounted = [o for o in objs if o["kind"] in ("Deployment", "RayJob", "RayService")]
    assert {o["kind"] for o in mounted} == {"Deployment", "RayJob", "RayService"}
    claim_source = {"claimName": "meow-artifacts"}
    for obj in mounted:
        tenant = obj["metadata"].get("labels", {}).get("meow.dev/tenant")
        for pod in pod_specs(obj)[: None if obj["kind"] != "RayJob" else -1]:  # not the submitter
            names = [v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim") == claim_source]
            assert len(names) == 1, obj["kind"]
            mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == names[0]]
            if obj["kind"] == "Deployment":
                assert [m["mountPath"] for m in mounts] == [root] and "subPath" not in mounts[0]
            else:
                assert mounts == [{"name": names[0], "mountPath": f"{root}/{tenant}", "subPath": tenant}]
    # Without a shared volume each namespace's claim gets its own provisioned volume.
    defaults = rendered(None)
    assert not by_kind(defaults, "PersistentVolume")
    assert all("volumeName" not in c["spec"] for c in by_kind(defaults, "PersistentVolumeClaim"))


def test_gpu_values_ask_for_gpus_and_the_cuda_image(rendered):
    objs = rendered("gpu-values.yaml")
    rayjob = one(objs, "RayJob")
    worker = ray_cluster_spec(rayjob)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["image"].endswith("-gpu")
    # 3 GPUs and 16 CPUs over 2 workers, as the backend splits them.
    assert worker["resources"]["limits"] == {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "2"}
    probe = one(objs, "RayService")
    probe_worker = ray_cluster_spec(probe)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert probe_worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    assert "VLLM_CPU_KVCACHE_SPACE" not in env


def _settings_from(objs: list[dict], monkeypatch):
    """The control plane's Settings, loaded from the environment the chart's ConfigMap gives it."""
    from meow_platform.settings import Settings

    for key in [k for k in os.environ if k.startswith("MEOW_PLATFORM_")]:
        monkeypatch.delenv(key)
    for key, value in one(objs, "ConfigMap", "meow-config")["data"].items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.mark.parametrize("values", VALUES)
def test_the_config_map_is_accepted_by_the_control_plane_settings(rendered, values, monkeypatch):
    settings = _settings_from(rendered(values), monkeypatch)  # unknown keys or wrong types raise
    assert settings.backend == "kuberay" and settings.host == "0.0.0.0"
    deployment = one(rendered(values), "Deployment")
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert settings.port == port


@pytest.mark.parametrize("values", ["gpu-values.yaml", MULTI, SHARED])
def test_the_chart_rayjob_is_the_one_the_kuberay_backend_builds(rendered, values, monkeypatch):
    from meow_platform.backends.base import Launch
    from meow_platform.backends.kuberay import build_rayjob

    objs = rendered(values)
    settings = _settings_from(objs, monkeypatch)
    chart_values = yaml.safe_load((CHART / "ci" / values).read_text())
    job = {**yaml.safe_load((CHART / "values.yaml").read_text())["exampleJob"], **chart_values["exampleJob"]}
    tenant = job.get("tenant") or chart_values["tenants"][0]["name"]
    launch = Launch(
        job_id=job["id"],
        tenant=tenant,
        spec=job["spec"],
        run_dir=f"{settings.resolved_artifact_root()}/{tenant}/runs/{job['id']}",
        workers=job["workers"],
        cpus=job["cpus"],
        gpus=job["gpus"],
        namespace=settings.kuberay.namespace_template.format(tenant=tenant),
        env=dict(settings.job_env),
    )
    expected = build_rayjob(launch, settings.kuberay)
    actual = one(objs, "RayJob")
    # The runtime env is YAML text: compare what it says, not how each side quotes it.
    for rayjob in (expected, actual):
        rayjob["spec"]["runtimeEnvYAML"] = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    assert actual == expected


def test_dashboards_ship_as_one_labelled_config_map_each(tmp_path):
    boards = tmp_path / "grafana"
    boards.mkdir()
    contents = {
        "platform_overview.json": {"title": "meow platform", "panels": [{"expr": 'sum(meow_platform_jobs_total{a="b"})'}]},
        "unlearning-run.json": {"title": "run", "panels": []},
    }
    for name, board in contents.items():
        (boards / name).write_text(json.dumps(board, indent=2))
    chart = chart_copy(tmp_path / "c", dashboards=boards)
    maps = [o for o in render(chart, set_values=("monitoring.dashboards.namespace=grafana",)) if "grafana_dashboard" in o["metadata"].get("labels", {})]
    assert sorted(m["metadata"]["name"] for m in maps) == ["meow-dashboard-platform-overview", "meow-dashboard-unlearning-run"]
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert m["metadata"]["namespace"] == "grafana"
        ((name, text),) = m["data"].items()
        assert json.loads(text) == contents[name]
    off = render(chart, set_values=("monitoring.dashboards.enabled=false",))
    assert not [o for o in off if "grafana_dashboard" in o["metadata"].get("labels", {})]


def test_the_chart_reads_the_dashboards_of_platform_grafana(rendered):
    link = CHART / "dashboards"
    assert link.is_symlink() and link.readlink().as_posix() == "../../platform/grafana"
    source = ROOT / "platform" / "grafana"
    shipped = {
        name: json.loads(text)
        for o in rendered(None) if "grafana_dashboard" in o["metadata"].get("labels", {})
        for name, text in o["data"].items()
    }
    assert shipped, "platform/grafana/ holds no dashboard"
    assert shipped == {p.name: json.loads(p.read_text()) for p in source.glob("*.json")}


def test_helm_package_holds_the_dashboards_and_no_scripts(tmp_path):
    boards = tmp_path / "grafana"
    boards.mkdir()
    (boards / "probing.json").write_text('{"title": "probing"}')
    chart = chart_copy(tmp_path / "c", dashboards=boards)
    helm("package", str(chart), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("meow-*.tgz")
    with tarfile.open(package) as tar:
        names = tar.getnames()
    assert "meow/values.schema.json" in names and "meow/templates/NOTES.txt" in names
    assert not [n for n in names if n.startswith("meow/scripts/")]
    assert [n for n in names if n.startswith("meow/dashboards/")] == ["meow/dashboards/probing.json"]
