"""docs/deploy.md, command by command, as far as each can run without a cluster or the network."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from .test_chart import by_kind, one
from .test_images import stages
from .tools import CHART, ROOT, helm

DOC = (ROOT / "docs" / "deploy.md").read_text()
CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
MY_VALUES = yaml.safe_load(re.search(r"```yaml\n(.*?)```", DOC, re.S).group(1))


def section(number: int) -> list[str]:
    """The commands of the bash blocks of section `## <number>.`."""
    text = re.search(rf"^## {number}\. .*?(?=^## |\Z)", DOC, re.S | re.M).group(0)
    return [ln for block in re.findall(r"```bash\n(.*?)```", text, re.S) for ln in block.splitlines() if ln.strip()]


def test_kuberay_is_the_version_the_chart_names_in_the_namespace_it_trusts():
    add, install = section(1)
    annotations = CHART_YAML["annotations"]
    assert shlex.split(add)[3:] == ["kuberay", annotations["meow.dev/kuberay-helm-repository"]]
    args = shlex.split(install)
    assert args[:3] == ["helm", "install", "kuberay-operator"]
    assert args[3] == annotations["meow.dev/kuberay-operator-chart"]
    assert args[args.index("--version") + 1] == annotations["meow.dev/kuberay-operator-version"]
    assert args[args.index("-n") + 1] == DEFAULTS["networkPolicy"]["kuberayOperatorNamespace"]


def test_the_images_built_are_the_ones_the_values_name():
    builds = [shlex.split(c) for c in section(2) if c.startswith("docker build")]
    pushes = [shlex.split(c)[2] for c in section(2) if c.startswith("docker push")]
    tags = {}
    for args in builds:
        dockerfile = ROOT / args[args.index("-f") + 1]
        assert dockerfile.exists() and args[-1] == "."
        if "--target" in args:
            assert args[args.index("--target") + 1] in stages(dockerfile)
        tags[dockerfile.name] = args[args.index("-t") + 1]
    version = CHART_YAML["appVersion"]
    assert tags["control-plane.Dockerfile"] == f"{MY_VALUES['image']['repository']}:{version}"
    assert tags["ray.Dockerfile"] == f"{MY_VALUES['ray']['image']['repository']}:{version}-cpu"
    assert sorted(pushes) == sorted(tags.values())


def _install(chart, command: str, values_file) -> list[dict]:
    """Run a `helm install|upgrade ... helm/meow ...` line of the doc as `helm install --dry-run=client`."""
    args = shlex.split(command)
    assert args[:2] in (["helm", "install"], ["helm", "upgrade"]) and args[3] == "helm/meow"
    args[args.index("-f") + 1] = str(values_file)
    result = helm("install", args[2], str(chart), *args[4:], "--dry-run=client")
    manifest = result.stdout.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
    return [d for d in yaml.safe_load_all(manifest) if d]


@pytest.fixture(scope="module")
def installed(chart, tmp_path_factory):
    """Objects of section 3's install, and of section 4's upgrade with team-b added."""
    folder = tmp_path_factory.mktemp("values")
    first, second = folder / "first.yaml", folder / "second.yaml"
    first.write_text(yaml.safe_dump(MY_VALUES))
    second.write_text(yaml.safe_dump({**MY_VALUES, "tenants": [{"name": "team-a"}, {"name": "team-b"}]}))
    install = next(c for c in section(3) if c.startswith("helm install"))
    upgrade = next(c for c in section(4) if c.startswith("helm upgrade"))
    return _install(chart, install, first), _install(chart, upgrade, second)


def test_the_chart_installs_without_fetching_anything():
    """No dependency to build: the operator is step 1, the chart renders from the repository alone."""
    assert "dependencies" not in CHART_YAML
    commands = [c for n in range(1, 7) for c in section(n)]
    assert not [c for c in commands if c.startswith("helm dependency")]
    assert section(3)[0].startswith("helm install meow helm/meow ")


def test_install_then_upgrade_add_the_tenant_namespaces(installed):
    first, second = installed
    assert [n["metadata"]["name"] for n in by_kind(first, "Namespace")] == ["meow-team-a"]
    assert [n["metadata"]["name"] for n in by_kind(second, "Namespace")] == ["meow-team-a", "meow-team-b"]
    assert "meow-team-b" in section(5)[-1]  # the namespace the doc looks for the RayJob in


def test_the_secrets_created_by_hand_are_the_ones_the_release_expects(installed):
    first, _ = installed
    credentials = MY_VALUES["artifacts"]["s3"]["credentialsSecret"]
    namespaces = {"meow"} | {n["metadata"]["name"] for n in by_kind(first, "Namespace")}
    created, key_ids = set(), set()
    for command in section(3):
        if " create secret " in command:
            args = shlex.split(command)
            created.add(args[2])
            assert args[6] == credentials
            literals = dict(a.split("=", 1)[1].split("=", 1) for a in args if a.startswith("--from-literal"))
            assert set(literals) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
            key_ids.add(literals["AWS_ACCESS_KEY_ID"])
    assert created == namespaces
    # Each namespace its own key pair: a tenant's credentials reach only its own prefix.
    assert len(key_ids) == len(namespaces)
    env = one(first, "ConfigMap", "meow-config")["data"]
    assert env["MEOW_PLATFORM_KUBERAY__ENV_SECRET"] == credentials


def test_port_forward_and_admin_token_name_real_objects(installed):
    first, _ = installed
    commands = section(4)
    forward = shlex.split(next(c for c in commands if "port-forward" in c).rstrip(" &"))
    service = one(first, "Service", forward[4].removeprefix("svc/"))
    assert service["metadata"]["namespace"] == forward[2]
    assert int(forward[5].split(":")[1]) == service["spec"]["ports"][0]["port"]
    token = next(c for c in commands if "ADMIN_TOKEN=" in c)
    name, key = re.search(r"get secret (\S+) -o jsonpath='\{\.data\.([\w-]+)\}'", token).groups()
    secret = one(first, "Secret", name)
    assert key in secret["data"]


def _routes():
    from meow_platform.api import jobs, tenants

    return {(method, route.path) for router in (jobs.router, tenants.router) for route in router.routes for method in route.methods}


def _curl(command: str) -> tuple[str, str, str | None]:
    args = shlex.split(command.split("| curl", 1)[-1] if "| curl" in command else command)
    method = args[args.index("-X") + 1] if "-X" in args else "GET"
    url = next(a for a in args if a.startswith("$MEOW_API_URL"))
    body = args[args.index("-d") + 1] if "-d" in args else None
    return method, url.removeprefix("$MEOW_API_URL"), body


def test_api_calls_use_real_routes_and_valid_bodies(installed):
    from meow_platform.api.schemas import JobSubmit, TenantCreate, TokenCreate

    routes = _routes()
    calls = [_curl(c) for c in section(4) + section(5) if "curl" in c]
    assert len(calls) == 4
    schemas = {"/v1/tenants": TenantCreate, "/v1/tenants/{name}/tokens": TokenCreate}
    for method, path, body in calls:
        template = re.sub(r"/v1/tenants/[^/]+/tokens", "/v1/tenants/{name}/tokens", path)
        assert (method, template) in routes, (method, path)
        if body is not None:
            schemas[template].model_validate_json(body)
    # The API account is for the tenant whose namespace the upgrade just made.
    tenant = json.loads(calls[0][2])["name"]
    assert calls[1][1] == f"/v1/tenants/{tenant}/tokens"
    assert f"meow-{tenant}" in [n["metadata"]["name"] for n in by_kind(installed[1], "Namespace")]
    # The submission: run its body-building half for real and check the body.
    submit = next(c for c in section(5) if "| curl" in c)
    builder, _, _ = submit.partition(" | curl")
    python_code = shlex.split(builder.split(" < ")[0])[2]
    stdin_file = ROOT / builder.split(" < ")[1].strip()
    body = subprocess.run([sys.executable, "-c", python_code], stdin=stdin_file.open(), capture_output=True, text=True, check=True).stdout
    job = JobSubmit.model_validate_json(body)
    from meow.pipeline.spec import load_spec

    load_spec(job.spec, source=str(stdin_file))


def test_grafana_finds_the_dashboards_and_prometheus_the_monitors(installed):
    first, _ = installed
    install = shlex.split(next(c for c in section(6) if c.startswith("helm install")))
    namespace = install[install.index("-n") + 1]
    assert namespace == MY_VALUES["monitoring"]["dashboards"]["namespace"] == DEFAULTS["networkPolicy"]["monitoringNamespace"]
    # Nil selectors: Prometheus takes every PodMonitor and ServiceMonitor, whatever their labels.
    assert "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false" in install
    assert by_kind(first, "PodMonitor") and by_kind(first, "ServiceMonitor")
    for board in [o for o in first if "grafana_dashboard" in o["metadata"].get("labels", {})]:
        assert board["metadata"]["namespace"] == namespace
    forward = shlex.split(section(6)[-1])
    assert forward[1:3] == ["-n", namespace]


def test_the_readme_deploy_section_shows_only_commands_of_this_doc():
    readme = (ROOT / "README.md").read_text()
    text = re.search(r"^### Deploy on Kubernetes\n.*?(?=^##)", readme, re.S | re.M).group(0)
    (block,) = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    documented = {ln for block in re.findall(r"```bash\n(.*?)```", DOC, re.S) for ln in block.splitlines()}
    assert len(commands) >= 10
    assert [c for c in commands if c not in documented] == []
