"""The plain manifests of k8s/ (for users without Helm) validate and agree with the chart and the code."""

from __future__ import annotations

import shlex

import pytest
import yaml

from .test_chart import by_kind, one
from .tools import K8S, load_manifests, pod_specs, ray_cluster_spec, render, validate_core, validate_custom_resource

FILES = sorted(p.name for p in K8S.glob("*.yaml"))


def test_the_four_manifests_are_there():
    assert FILES == ["podmonitor.yaml", "rayjob.yaml", "rayservice.yaml", "tenant.yaml"]


@pytest.mark.parametrize("name", FILES)
def test_every_object_validates(name):
    for obj in load_manifests(K8S / name):
        if obj["apiVersion"].startswith("ray.io/"):
            validate_custom_resource(obj)
        elif obj["apiVersion"] == "monitoring.coreos.com/v1":
            assert obj["kind"] == "PodMonitor"
        else:
            validate_core(obj)
        for pod in pod_specs(obj):
            for c in pod["containers"]:
                assert c["securityContext"]["runAsNonRoot"] is True
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"])


def test_the_rayjob_runs_meow_unlearn_on_the_spec_of_its_config_map():
    from meow.cli import main
    from meow.pipeline.spec import load_spec

    objs = load_manifests(K8S / "rayjob.yaml")
    config_map, rayjob = one(objs, "ConfigMap"), one(objs, "RayJob")
    head = ray_cluster_spec(rayjob)["headGroupSpec"]["template"]["spec"]
    (volume,) = head["volumes"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    (mount,) = head["containers"][0]["volumeMounts"]
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[:2] == ["meow", "unlearn"] and "unlearn" in main.commands
    (spec_file,) = config_map["data"]
    assert argv[2] == f"{mount['mountPath']}/{spec_file}"
    assert argv[3] == "--run-dir" and argv[4].startswith("s3://")
    load_spec(config_map["data"][spec_file], source="k8s/rayjob.yaml")  # raises on an invalid spec


def test_the_rayservice_serves_both_models_through_meow_serve():
    from meow.serve.config import ServeConfig

    service = one(load_manifests(K8S / "rayservice.yaml"), "RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert app["import_path"] == "meow.serve.app:build_app"
    config = ServeConfig.model_validate(app["args"])
    assert {m.name for m in config.models} == {"original", "unlearned"}
    assert {d["name"] for d in app["deployments"]} == {f"model-{m.name}" for m in config.models}
    workers = ray_cluster_spec(service)["workerGroupSpecs"][0]
    assert workers["minReplicas"] < workers["maxReplicas"]


def test_the_pod_monitor_selects_the_ray_pods_of_these_manifests():
    from .netpol import selects

    monitor = one(load_manifests(K8S / "podmonitor.yaml"), "PodMonitor")
    selector = monitor["spec"]["selector"]
    for name in ("rayjob.yaml", "rayservice.yaml"):
        ray = next(o for o in load_manifests(K8S / name) if o["apiVersion"].startswith("ray.io/"))
        cluster = ray_cluster_spec(ray)
        for group, node_type in [(cluster["headGroupSpec"], "head"), *[(w, "worker") for w in cluster["workerGroupSpecs"]]]:
            labels = {**group["template"]["metadata"]["labels"], "ray.io/node-type": node_type}
            assert selects(selector, labels)
            ports = {p["name"] for p in group["template"]["spec"]["containers"][0]["ports"]}
            assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_the_tenant_template_is_what_the_chart_renders(chart):
    def essence(objs):
        return sorted(
            (
                o["kind"],
                o["metadata"]["name"],
                o["metadata"].get("namespace"),
                {k: v for k, v in o["metadata"].get("labels", {}).items() if not k.startswith(("app.kubernetes.io", "helm.sh"))},
                o.get("spec"),
            )
            for o in objs
            if o["kind"] in ("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy")
            and o["metadata"].get("namespace") != "meow"  # the release namespace's own policy
        )

    rendered = render(chart, set_values=("tenants[0].name=team-a",))
    plain = load_manifests(K8S / "tenant.yaml")
    assert essence(plain) == essence(rendered)
    assert len(by_kind(plain, "NetworkPolicy")) == 2
