"""The `kuberay` backend: one RayJob custom resource per submission, in the tenant's namespace.

Each RayJob brings up its own Ray cluster (KubeRay's recommendation for isolation: Ray has no
access control between jobs of one cluster), runs the MEOW driver once, and is cleaned up after
`ttlSecondsAfterFinished`. Admission and fair sharing across tenants belong to Kueue when a queue
name is set: the `kueue.x-k8s.io/queue-name` label hands the RayJob to a LocalQueue, and Kueue, not
we, flips `spec.suspend`.

`build_rayjob` is a pure function (no I/O, no clock, no randomness) so that the Helm chart's
RayJob template can be compared with it, and so that tests validate every RayJob it produces
against the KubeRay CRD schema.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from meow_platform.backends.base import (
    Backend,
    BackendRejected,
    BackendState,
    BackendStatus,
    BackendUnavailable,
    Launch,
    entrypoint,
)
from meow_platform.settings import KubeRaySettings

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# KubeRay names the submitter Job after the RayJob, and its container so.
SUBMITTER_CONTAINER = "ray-job-submitter"
METRICS_PORT = 8080
ARTIFACTS_VOLUME = "artifacts"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Pod level too, so that containers KubeRay injects without a security context of their own
# inherit what Pod Security "restricted" asks of every pod.
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
# Our label on submitter pods (the tenant NetworkPolicies select them by it): KubeRay's own labels
# on them differ between operator versions.
ROLE_LABEL, SUBMITTER_ROLE = "meow.dev/role", "job-submitter"
# `ray job submit` and `ray job logs --follow`: one small Python process.
SUBMITTER_RESOURCES = {"cpu": "500m", "memory": "512Mi"}


def rayjob_name(job_id: str) -> str:
    return f"meow-{job_id}"


def build_rayjob(launch: Launch, config: KubeRaySettings) -> dict[str, Any]:
    """The RayJob manifest for one submission.

    Args:
        launch: the job: id, tenant, its namespace and optional Kueue queue, the tenant's spec
            (it travels base64-encoded in the runtime environment, never in a shell command),
            the run directory, and what the spec's largest stage needs (workers, CPUs, GPUs).
        config: platform-wide KubeRay settings (image, TTL, deadlines, head/worker sizes, the
            artifact claim every pod mounts when run directories live on a shared volume).

    The head runs the driver only (`num-cpus: 0`); `workers` worker pods share the CPUs and GPUs
    evenly. The cluster uses Ray token auth and is deleted when the job finishes.
    """
    name = rayjob_name(launch.job_id)
    labels = {
        "app.kubernetes.io/name": "meow",
        "app.kubernetes.io/component": "job",
        "app.kubernetes.io/managed-by": "meow-platform",
        "meow.dev/tenant": launch.tenant,
        "meow.dev/job-id": launch.job_id,
    }
    queue = launch.queue_name or config.queue_name
    metadata_labels = {**labels, **({QUEUE_LABEL: queue} if queue else {})}
    workers = max(1, launch.workers)
    worker_resources: dict[str, str] = {"cpu": _cpu_quantity(launch.cpus / workers), "memory": config.worker_memory}
    if launch.gpus > 0:
        worker_resources["nvidia.com/gpu"] = str(math.ceil(launch.gpus / workers))
    head_resources = {"cpu": config.head_cpu, "memory": config.head_memory}
    tenant_dir = _tenant_dir(launch, config)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": launch.namespace, "labels": metadata_labels},
        "spec": {
            "entrypoint": entrypoint(launch.run_dir),
            "runtimeEnvYAML": yaml.safe_dump({"env_vars": launch.job_env()}, sort_keys=True),
            "jobId": name,
            "metadata": {"tenant": launch.tenant, "job_id": launch.job_id},
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
            "activeDeadlineSeconds": config.active_deadline_seconds,
            "backoffLimit": config.backoff_limit,
            "submitterPodTemplate": _submitter_template(labels, config),
            "rayClusterSpec": {
                "rayVersion": config.ray_version,
                "enableInTreeAutoscaling": False,
                "authOptions": {"mode": "token"},
                "headGroupSpec": {
                    # The head hosts the driver only; stages' actors and trainers go to workers.
                    "rayStartParams": {"num-cpus": "0", "metrics-export-port": str(METRICS_PORT)},
                    "template": _pod_template(
                        "ray-head",
                        labels,
                        head_resources,
                        config,
                        tenant_dir,
                        ports={"gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": METRICS_PORT},
                    ),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": workers,
                        "minReplicas": workers,
                        "maxReplicas": workers,
                        "rayStartParams": {"metrics-export-port": str(METRICS_PORT)},
                        "template": _pod_template(
                            "ray-worker", labels, worker_resources, config, tenant_dir, ports={"metrics": METRICS_PORT}
                        ),
                    }
                ],
            },
        },
    }


def _tenant_dir(launch: Launch, config: KubeRaySettings) -> str | None:
    """With an artifact claim: the tenant's directory `<root>/<tenant>` (the run directory is
    `<root>/<tenant>/runs/<job>`), the only part of the claim a job's pods mount."""
    if not config.artifacts_claim:
        return None
    tenant_dir = posixpath.dirname(posixpath.dirname(posixpath.normpath(launch.run_dir)))
    mount = posixpath.normpath(config.artifacts_mount_path)
    if posixpath.basename(tenant_dir) != launch.tenant or not tenant_dir.startswith(mount + "/"):
        raise ValueError(f"run directory {launch.run_dir!r} is not <{mount}/...>/{launch.tenant}/runs/<job>")
    return tenant_dir


def _submitter_template(labels: dict[str, str], config: KubeRaySettings) -> dict[str, Any]:
    """KubeRay's submitter pod (K8sJobMode), restricted like the Ray pods; KubeRay adds the command."""
    container = {
        "name": SUBMITTER_CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "resources": {"requests": SUBMITTER_RESOURCES, "limits": SUBMITTER_RESOURCES},
        "securityContext": RESTRICTED,
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "containers": [container],
    }
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in config.image_pull_secrets]
    role = {"app.kubernetes.io/component": SUBMITTER_ROLE, ROLE_LABEL: SUBMITTER_ROLE}
    return {"metadata": {"labels": {**labels, **role}}, "spec": spec}


def _pod_template(
    container: str,
    labels: dict[str, str],
    resources: dict[str, str],
    config: KubeRaySettings,
    tenant_dir: str | None,
    ports: dict[str, int],
) -> dict[str, Any]:
    main: dict[str, Any] = {
        "name": container,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "resources": {"requests": resources, "limits": resources},
        "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
        "securityContext": RESTRICTED,
        **({"envFrom": [{"secretRef": {"name": config.env_secret}}]} if config.env_secret else {}),
    }
    # Jobs never talk to the Kubernetes API.
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": dict(POD_SECURITY),
        "containers": [main],
    }
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in config.image_pull_secrets]
    if config.artifacts_claim and tenant_dir:
        # Every pod: the driver on the head writes status and report, workers write models. Only
        # the tenant's own directory of the claim, at the same path as in the control plane.
        sub_path = posixpath.relpath(tenant_dir, posixpath.normpath(config.artifacts_mount_path))
        main["volumeMounts"] = [{"name": ARTIFACTS_VOLUME, "mountPath": tenant_dir, "subPath": sub_path}]
        spec["volumes"] = [{"name": ARTIFACTS_VOLUME, "persistentVolumeClaim": {"claimName": config.artifacts_claim}}]
        spec["securityContext"]["fsGroup"] = config.artifacts_fs_group
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    return {"metadata": {"labels": labels}, "spec": spec}


def _cpu_quantity(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{math.ceil(cpus * 1000)}m"


def status_of(rayjob: dict[str, Any]) -> BackendStatus:
    """Map a RayJob's status to a backend state (KubeRay's JobDeploymentStatus and JobStatus)."""
    status = rayjob.get("status") or {}
    deployment, job = status.get("jobDeploymentStatus", ""), status.get("jobStatus", "")
    # `reason` is an enum-like word (DeadlineExceeded, SubmissionFailed, AppFailed); `message` can
    # quote job logs, so it is never copied.
    reason = status.get("reason") or ""
    if deployment in ("Complete", "Failed"):
        if job == "SUCCEEDED":
            return BackendStatus(BackendState.SUCCEEDED)
        if job == "STOPPED":
            return BackendStatus(BackendState.STOPPED)
        return BackendStatus(BackendState.FAILED, reason or f"job status {job or 'unknown'}")
    if deployment == "Running" and job == "RUNNING":
        return BackendStatus(BackendState.RUNNING)
    return BackendStatus(BackendState.PENDING, deployment)


class KubeRayBackend(Backend):
    name = "kuberay"

    def __init__(self, config: KubeRaySettings, api_client: k8s.ApiClient | None = None):
        self.config = config
        self.api_client = api_client or _api_client(config)
        self.custom = k8s.CustomObjectsApi(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)

    def submit(self, launch: Launch) -> str:
        body = build_rayjob(launch, self.config)
        try:
            self._call(self.custom.create_namespaced_custom_object, GROUP, VERSION, launch.namespace, PLURAL, body)
        except ApiException as e:
            # Already created by an earlier attempt for this job id: adopt it.
            if e.status != 409:
                raise BackendRejected(f"the Kubernetes API refused the RayJob (HTTP {e.status} {e.reason})") from None
        return f"{launch.namespace}/{body['metadata']['name']}"

    def status(self, backend_id: str) -> BackendStatus:
        namespace, name = backend_id.split("/", 1)
        try:
            rayjob = self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as e:
            if e.status == 404:
                return BackendStatus(BackendState.MISSING, "the RayJob no longer exists")
            raise
        return status_of(rayjob)

    def cancel(self, backend_id: str) -> None:
        namespace, name = backend_id.split("/", 1)
        try:
            self._call(
                self.custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                propagation_policy="Background",
            )
        except ApiException as e:
            if e.status != 404:
                raise

    def logs(self, backend_id: str) -> str:
        """The submitter's output, which follows the Ray job's logs (`ray job logs --follow`)."""
        namespace, name = backend_id.split("/", 1)
        pods = self._call(self.core.list_namespaced_pod, namespace, label_selector=f"job-name={name}").items
        if not pods:
            return ""
        newest = max(pods, key=lambda p: p.metadata.creation_timestamp)
        return self._call(
            self.core.read_namespaced_pod_log, newest.metadata.name, namespace, container=SUBMITTER_CONTAINER
        )

    def close(self) -> None:
        self.api_client.close()

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ApiException as e:
            if e.status is None or e.status >= 500 or e.status == 429:
                raise BackendUnavailable(f"Kubernetes API: HTTP {e.status}") from None
            raise
        except urllib3.exceptions.HTTPError as e:
            raise BackendUnavailable(f"Kubernetes API: {type(e).__name__}") from None


def _api_client(config: KubeRaySettings) -> k8s.ApiClient:
    if config.api_server:
        configuration = k8s.Configuration()
        configuration.host = config.api_server
        return k8s.ApiClient(configuration)
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.ApiClient()
