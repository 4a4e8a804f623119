"""The chart's share of issue 22's hardening, rendered with a real helm and checked object by object:
offline rendering, default-deny tenant egress, per-tenant artifact access, the job submitter's pod,
Pod Security "restricted", one control plane, TLS, tokens, image pull secrets and dashboards."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from . import netpol
from .conftest import VALUES
from .test_chart import MULTI, SHARED, _settings_from, by_kind, one
from .tools import CHART, ROOT, helm, pod_specs, ray_cluster_spec, render

GPU = "gpu-values.yaml"
MINIMAL = "minimal-values.yaml"


def _tenant_pods(ns: str) -> dict[str, tuple[str, dict]]:
    tenant = {"meow.dev/tenant": ns.removeprefix("meow-")}
    return {
        "head": (ns, {"ray.io/node-type": "head", "app.kubernetes.io/component": "job", **tenant}),
        "worker": (ns, {"ray.io/node-type": "worker", "app.kubernetes.io/component": "job", **tenant}),
        "submitter": (ns, {"meow.dev/role": "job-submitter", "app.kubernetes.io/component": "job-submitter", **tenant}),
        "probe-head": (ns, {"ray.io/node-type": "head", "app.kubernetes.io/component": "probe", **tenant}),
        "probe-worker": (ns, {"ray.io/node-type": "worker", "app.kubernetes.io/component": "probe", **tenant}),
    }


CONTROL_PLANE = (
    "meow",
    {
        "app.kubernetes.io/name": "meow",
        "app.kubernetes.io/instance": "meow",
        "app.kubernetes.io/component": "control-plane",
    },
)
POSTGRES = ("databases", {"app": "postgres"})
METADATA = (None, {"ip": "169.254.169.254"})
S3 = (None, {"ip": "52.216.8.1"})
PRIVATE = (None, {"ip": "10.0.0.12"})
DNS = ("kube-system", {"k8s-app": "kube-dns"})


# --- the chart renders from the repository alone --------------------------------------------------


def test_the_chart_renders_from_the_repository_alone():
    """No dependency to fetch: `helm lint` and `helm template` of helm/meow itself, offline."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert "dependencies" not in chart
    assert not (CHART / "charts").exists() and not (CHART / "Chart.lock").exists()
    assert "1 chart(s) linted, 0 chart(s) failed" in helm("lint", str(CHART), "--strict").stdout
    objs = [d for d in yaml.safe_load_all(helm("template", "meow", str(CHART)).stdout) if d]
    assert one(objs, "Deployment")
    # The operator version the chart states is the one whose CRDs the tests validate against.
    assert chart["annotations"]["meow.dev/kuberay-operator-version"] == "1.7.0"
    readme = (CHART / "README.md").read_text()
    assert "helm install kuberay-operator kuberay/kuberay-operator --version 1.7.0" in readme
    assert "helm dependency build" not in readme


# --- network policies -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES)
def test_tenant_egress_is_denied_but_for_dns_its_own_pods_and_the_object_store(rendered, values):
    objs = rendered(values)
    policies = by_kind(objs, "NetworkPolicy")
    for namespace in (n["metadata"]["name"] for n in by_kind(objs, "Namespace")):
        pods = _tenant_pods(namespace)
        for name, src in pods.items():
            # The control plane, a database, the cloud metadata endpoint, private addresses: closed.
            closed = [(CONTROL_PLANE, 8700), (POSTGRES, 5432), (METADATA, 80), (METADATA, 443)]
            if name != "probe-head":  # the probe's autoscaler reaches the API server, on 443/6443
                closed.append((PRIVATE, 443))
            for dst, port in closed:
                assert not netpol.allowed(policies, src, dst, port), (values, name, dst, port)
            assert netpol.allowed(policies, src, DNS, 53)
        # Inside one Ray cluster the traffic flows, but for the dashboard and client ports.
        assert netpol.allowed(policies, pods["worker"], pods["head"], 6379)
        assert not netpol.allowed(policies, pods["worker"], pods["head"], 8265)
        assert netpol.allowed(policies, pods["submitter"], pods["head"], 8265)
        # Object store: only where the values say.
        store = (
            values and yaml.safe_load((CHART / "ci" / values).read_text()).get("networkPolicy", {}).get("objectStore")
        ) or {}
        minio = ("storage", {"app": "minio"})
        assert netpol.allowed(policies, pods["worker"], minio, 9000) == (store.get("namespace") == "storage")
        assert not netpol.allowed(policies, pods["worker"], minio, 22)
        assert netpol.allowed(policies, pods["head"], S3, 443) == bool(store.get("ipBlocks"))


def test_the_release_namespace_admits_the_job_api_from_anywhere_but_tenant_namespaces(rendered, chart):
    policies = by_kind(rendered(MULTI), "NetworkPolicy")
    (policy,) = [p for p in policies if p["metadata"]["namespace"] == "meow"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ingress = ("ingress-nginx", {"app": "ingress-nginx"})
    assert netpol._direction_allows(policies, "Ingress", *CONTROL_PLANE, *ingress, 8700)
    assert netpol._direction_allows(policies, "Ingress", *CONTROL_PLANE, "monitoring", {}, 8700)
    assert not netpol._direction_allows(policies, "Ingress", *CONTROL_PLANE, *ingress, 5000)
    # The policy's own view of a tenant pod: even with the tenant's egress open, it is refused.
    ns_selector = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    assert not netpol.selects(ns_selector, {"kubernetes.io/metadata.name": "meow-team-a", "meow.dev/tenant": "team-a"})
    assert netpol.selects(ns_selector, {"kubernetes.io/metadata.name": "ingress-nginx"})
    extra = render(chart, set_values=("networkPolicy.controlPlane.extraFrom[0].ipBlock.cidr=10.0.0.0/8",))
    (policy,) = [p for p in by_kind(extra, "NetworkPolicy") if p["metadata"]["namespace"] == "meow"]
    assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in policy["spec"]["ingress"][0]["from"]


def test_an_object_store_block_holding_the_metadata_endpoint_needs_its_except(chart):
    base = ("tenants[0].name=a", "networkPolicy.objectStore.ipBlocks[0].cidr=0.0.0.0/0")
    result = helm("template", "meow", str(chart), *[a for s in base for a in ("--set", s)], check=False)
    assert result.returncode != 0 and "169.254.0.0/16" in result.stderr
    objs = render(chart, set_values=(*base, "networkPolicy.objectStore.ipBlocks[0].except[0]=169.254.0.0/16"))
    policies = by_kind(objs, "NetworkPolicy")
    worker = _tenant_pods("meow-a")["worker"]
    assert netpol.allowed(policies, worker, S3, 443) and not netpol.allowed(policies, worker, METADATA, 443)


# --- the probing RayService's autoscaler ----------------------------------------------------------


@pytest.mark.parametrize("values", [MULTI, SHARED, GPU])
def test_the_probe_autoscaler_gets_a_token_and_the_api_server_and_nothing_else_does(rendered, values):
    objs = rendered(values)
    service = one(objs, "RayService")
    cluster = ray_cluster_spec(service)
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]["template"]["spec"]
    # The pod mounts no token; the autoscaler container alone gets one, at the in-cluster path.
    assert head["automountServiceAccountToken"] is False
    (mount,) = cluster["autoscalerOptions"]["volumeMounts"]
    assert mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" and mount["readOnly"] is True
    (volume,) = [v for v in head["volumes"] if v["name"] == mount["name"]]
    sources = volume["projected"]["sources"]
    assert {"serviceAccountToken", "configMap", "downwardAPI"} == {k for s in sources for k in s}
    assert [s["serviceAccountToken"]["path"] for s in sources if "serviceAccountToken" in s] == ["token"]
    assert not [m for m in head["containers"][0].get("volumeMounts", []) if m["name"] == mount["name"]]
    # The API server is reachable from the probe's head (the autoscaler's pod) only.
    policies = by_kind(objs, "NetworkPolicy")
    pods = _tenant_pods(service["metadata"]["namespace"])
    api = (None, {"ip": "172.20.0.10"})  # an API server endpoint outside the pod network
    assert netpol.allowed(policies, pods["probe-head"], api, 6443)
    assert not netpol.allowed(policies, pods["probe-head"], METADATA, 443)
    for other in ("probe-worker", "head", "worker", "submitter"):
        assert not netpol.allowed(policies, pods[other], api, 6443), other


# --- artifacts: each tenant its own part ----------------------------------------------------------


def test_ray_pods_of_a_tenant_mount_only_that_tenants_directory(rendered):
    objs = rendered(SHARED)
    for obj in objs:
        if obj["kind"] not in ("RayJob", "RayService"):
            continue
        tenant = obj["metadata"]["labels"]["meow.dev/tenant"]
        for pod in pod_specs(obj):
            for container in pod["containers"]:
                for m in container.get("volumeMounts", []):
                    if m["name"] == "artifacts":
                        assert m == {
                            "name": "artifacts",
                            "mountPath": f"/var/lib/meow/artifacts/{tenant}",
                            "subPath": tenant,
                        }
    # The probe reads the unlearned model of its own tenant's run, inside what it mounts.
    probe = one(objs, "RayService")
    tenant = probe["metadata"]["labels"]["meow.dev/tenant"]
    app = yaml.safe_load(probe["spec"]["serveConfigV2"])["applications"][0]
    unlearned = next(m["spec"] for m in app["args"]["models"] if m["name"] == "unlearned")
    assert unlearned.startswith(f"/var/lib/meow/artifacts/{tenant}/")


def test_s3_credentials_come_from_the_tenants_own_namespace(rendered):
    objs = rendered(MULTI)
    for obj in objs:
        if obj["kind"] in ("RayJob", "RayService"):
            cluster = ray_cluster_spec(obj)
            for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
                (source,) = group["template"]["spec"]["containers"][0]["envFrom"]
                # A Secret reference is namespaced: the tenant's own Secret, its own key pair.
                assert source == {"secretRef": {"name": "meow-s3"}}
            run_root = "s3://meow-runs/meow/" + obj["metadata"]["labels"]["meow.dev/tenant"] + "/"
            text = json.dumps(obj["spec"])
            assert "s3://meow-runs/meow/" not in text.replace(run_root, "")


# --- the submitter pod and Pod Security -----------------------------------------------------------

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _check_restricted(pod: dict, where: str) -> None:
    """Pod Security Standards "restricted" (v1.27+), as the admission controller checks a pod."""
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
    for v in pod.get("volumes", []):
        assert set(v) - {"name"} <= RESTRICTED_VOLUMES, (where, v)
    pod_ctx = pod.get("securityContext", {})
    for c in pod.get("initContainers", []) + pod["containers"]:
        ctx = c.get("securityContext", {})
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, (where, c["name"])
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), (where, c["name"])
        assert ctx.get("allowPrivilegeEscalation") is False and not ctx.get("privileged"), (where, c["name"])
        assert ctx["capabilities"]["drop"] == ["ALL"] and not set(ctx["capabilities"].get("add", [])) - {
            "NET_BIND_SERVICE"
        }
        assert not any(p.get("hostPort") for p in c.get("ports", [])), (where, c["name"])


@pytest.mark.parametrize("values", VALUES)
def test_tenant_namespaces_enforce_restricted_and_every_pod_meets_it(rendered, values):
    objs = rendered(values)
    for namespace in by_kind(objs, "Namespace"):
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objs:
        for i, pod in enumerate(pod_specs(obj)):
            _check_restricted(pod, f"{obj['kind']} {obj['metadata']['name']} pod {i}")
        if obj["kind"] == "RayJob":
            assert "submitterPodTemplate" in obj["spec"]
        if obj["kind"] == "RayService":
            # The autoscaler, a container KubeRay adds to the head, with the context given here.
            autoscaler = ray_cluster_spec(obj)["autoscalerOptions"]
            _check_restricted({"containers": [{"name": "autoscaler", **autoscaler}]}, "autoscaler")


def test_baseline_is_a_value_away_for_an_older_operator(chart):
    objs = render(chart, set_values=("tenants[0].name=a", "podSecurityEnforce=baseline"))
    assert one(objs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


@pytest.mark.parametrize("values", [MULTI, SHARED, GPU])
def test_the_submitter_pod_is_restricted_and_selected_by_the_charts_own_label(rendered, values):
    objs = rendered(values)
    rayjob = one(objs, "RayJob")
    submitter = rayjob["spec"]["submitterPodTemplate"]
    labels = submitter["metadata"]["labels"]
    assert (
        labels["meow.dev/role"] == "job-submitter"
        and labels["meow.dev/job-id"] == rayjob["metadata"]["labels"]["meow.dev/job-id"]
    )
    spec = submitter["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["name"] == "ray-job-submitter"  # the name KubeRay looks the container up by
    head_image = ray_cluster_spec(rayjob)["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert container["image"] == head_image and "command" not in container
    # No NetworkPolicy depends on labels KubeRay sets on submitters (those vary between versions).
    for policy in by_kind(objs, "NetworkPolicy"):
        assert "originated-from" not in json.dumps(policy)


# --- one control plane, TLS, tokens ---------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES)
def test_one_control_plane_with_a_disruption_budget(rendered, values):
    objs = rendered(values)
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    budget = one(objs, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert netpol.selects(budget["spec"]["selector"], pod_labels)
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]


def test_an_ingress_serves_tls_unless_explicitly_opted_out(rendered, chart):
    ingress = one(rendered(MULTI), "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["meow.internal.example"], "secretName": "meow-tls"}]
    plain = one(render(chart, set_values=("ingress.enabled=true", "ingress.allowInsecureHttp=true")), "Ingress")
    assert "tls" not in plain["spec"]
    result = helm("template", "meow", str(chart), "--set", "ingress.enabled=true", check=False)
    assert result.returncode != 0 and "ingress.tlsSecretName is required" in result.stderr


def _secrets(objs):
    return {s["metadata"]["name"]: s for s in by_kind(objs, "Secret")}


def test_given_tokens_do_not_change_between_renders_and_named_secrets_are_not_made(chart):
    given = ("adminToken.value=admin-secret-value", "metricsToken.value=metrics-secret-value")
    first, second = _secrets(render(chart, set_values=given)), _secrets(render(chart, set_values=given))
    assert first == second and set(first) == {"meow-admin-token", "meow-metrics-token"}
    for secret in first.values():
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    named = render(chart, set_values=("adminToken.existingSecret=mine", "metricsToken.existingSecret=mine-too"))
    assert not by_kind(named, "Secret")
    volumes = {v["name"]: v for v in one(named, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["admin-token"]["secret"]["secretName"] == "mine"
    assert volumes["metrics-token"]["secret"]["secretName"] == "mine-too"


def test_the_metrics_token_is_a_mounted_file_read_at_every_request(rendered, monkeypatch, tmp_path):
    from meow_platform.auth import Authenticator, Unauthenticated

    objs = rendered(None)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert "MEOW_PLATFORM_METRICS_TOKEN" not in env
    path = env["MEOW_PLATFORM_METRICS_TOKEN_FILE"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    # A subPath mount would never see the kubelet's update of a rotated Secret.
    assert "subPath" not in mount and mount["name"] == "metrics-token"
    # The control plane's side: the settings the chart gives it, with the file somewhere writable.
    token_file = tmp_path / "metrics-token"
    token_file.write_text("first-token\n")
    monkeypatch.setenv("MEOW_PLATFORM_METRICS_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("MEOW_PLATFORM_DATA_DIR", str(tmp_path))
    settings = _settings_from(objs, monkeypatch)
    settings = settings.model_copy(update={"metrics_token_file": token_file})
    auth = Authenticator(store=None, admin_token="admin", metrics_token=settings.current_metrics_token)
    assert auth.authenticate("Bearer first-token").scope == "metrics"
    token_file.write_text("second-token\n")  # the Secret rotated: no restart
    assert auth.authenticate("Bearer second-token").scope == "metrics"
    with pytest.raises(Unauthenticated):
        auth.authenticate("Bearer first-token")
    token_file.unlink()  # mid-update: no metrics token rather than an error
    with pytest.raises(Unauthenticated):
        auth.authenticate("Bearer second-token")


# --- image pull secrets ---------------------------------------------------------------------------


def test_every_pod_gets_the_image_pull_secrets(rendered):
    objs = rendered(MULTI)
    checked = 0
    for obj in objs:
        for pod in pod_specs(obj):
            assert pod.get("imagePullSecrets") == [{"name": "regcred"}], obj["kind"]
            checked += 1
    assert checked >= 1 + 3 + 2  # control plane, RayJob head/worker/submitter, RayService head/worker
    without = rendered(None)
    assert not [p for o in without for p in pod_specs(o) if "imagePullSecrets" in p]


# --- dashboards -----------------------------------------------------------------------------------

GRAFANA = ROOT / "platform" / "grafana"


def _exprs(board: dict) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_the_unlearning_run_dashboard_picks_a_tenant_and_a_run():
    board = json.loads((GRAFANA / "meow-unlearning-run.json").read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"tenant", "run"} <= set(variables)
    assert "tenant" in variables["tenant"]["definition"] and "$tenant" in variables["run"]["definition"]
    for expr in _exprs(board):
        for metric in re.findall(r"ray_meow_\w+", expr):
            assert f'{metric}{{tenant=~"$tenant", run=~"$run"}}' in expr, expr


def test_the_dashboards_read_only_series_the_chart_scrapes(rendered):
    """meow_platform_* from the control plane (ServiceMonitor), ray_* from Ray pods (PodMonitor);
    nothing in the chart scrapes the probe's textfile (meow_probe_*)."""
    objs = rendered(MULTI)
    assert one(objs, "ServiceMonitor") and one(objs, "PodMonitor")
    boards = [json.loads(p.read_text()) for p in GRAFANA.glob("*.json")]
    assert boards
    for board in boards:
        for expr in _exprs(board):
            for metric in re.findall(r"\b(?:meow|ray)_[a-z_]+", expr):
                assert metric.startswith(("meow_platform_", "ray_")), (board["title"], expr)
