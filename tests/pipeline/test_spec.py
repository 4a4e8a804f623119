import json
from pathlib import Path

import pytest

from meow.pipeline.spec import PipelineSpec, SpecError, load_spec, load_spec_file

ROOT = Path(__file__).resolve().parents[2]


def test_empty_spec_is_all_defaults():
    spec = load_spec("")
    assert spec == PipelineSpec()
    assert spec.stages == ("invert", "memo", "select", "unlearn")
    assert spec.select.rule == "largest" and spec.select.k == 3


def test_unknown_key_names_the_key_and_its_line():
    text = "name: demo\nmemo:\n  stride: 5\n  strde: 4\n"
    with pytest.raises(SpecError, match=r"my\.yaml, line 4, key memo\.strde: Extra inputs are not permitted"):
        load_spec(text, "my.yaml")


def test_wrong_type_names_the_key_and_its_line():
    text = "name: demo\nunlearn:\n  train:\n    learning_rate: fast\n"
    with pytest.raises(SpecError, match=r"line 4, key unlearn\.train\.learning_rate"):
        load_spec(text, "my.yaml")


def test_every_error_is_reported():
    with pytest.raises(SpecError) as e:
        load_spec("memo:\n  stride: 0\nselect:\n  k: 0\n")
    assert "key memo.stride" in str(e.value) and "key select.k" in str(e.value)


def test_unregistered_method_is_rejected():
    expected = r"line 3, key unlearn\.method: .*unknown unlearning method 'os\.system'; registered: .*meow"
    with pytest.raises(SpecError, match=expected):
        load_spec("name: demo\nunlearn:\n  method: os.system\n")


def test_stages_must_be_known_and_in_order():
    with pytest.raises(SpecError, match="unknown stage"):
        load_spec("stages: [invert, shell]\n")
    with pytest.raises(SpecError, match="must follow the order"):
        load_spec("stages: [memo, invert]\n")


def test_malformed_yaml_names_the_line():
    with pytest.raises(SpecError, match=r"s\.yaml, line 2: not valid YAML"):
        load_spec("name: a\nmemo: x: y\nselect: {}\n", "s.yaml")


def test_error_messages_do_not_echo_values():
    with pytest.raises(SpecError) as e:
        load_spec("forget:\n  source: 12\n  question_field: [secret text]\n")
    assert "secret text" not in str(e.value)


def test_uris_and_resources():
    spec = load_spec("model: s3://models/base\nforget:\n  source: s3://team-a/forget.jsonl\nunlearn:\n  train:\n    workers: 3\n")
    assert sorted(spec.uris()) == ["s3://models/base", "s3://team-a/forget.jsonl"]
    assert spec.resources()["workers"] == 3
    assert load_spec("").uris() == []
    assert load_spec("unlearn:\n  retain: /data/team-b/retain.jsonl\n").uris() == ["/data/team-b/retain.jsonl"]
    assert load_spec("unlearn:\n  retain: retain99\n").uris() == []


def test_resources_count_the_memory_of_workers_and_engine_actors():
    spec = load_spec(
        "stages: [invert, memo, select, unlearn, evaluate]\n"
        "unlearn: {train: {workers: 3, memory_per_worker: 6GiB}}\n"
        "memo: {actors: 4, engine: {memory_per_actor: 5Gi}}\n"
        "evaluate: {actors: 2, engine: {memory_per_actor: 1073741824}}\n"
    )
    needs = spec.stage_resources()
    assert needs["unlearn"]["memory"] == 3 * 6 << 30
    assert needs["memo"]["memory"] == 4 * 5 << 30
    assert needs["evaluate"]["memory"] == 2 << 30
    assert needs["invert"]["memory"] == 2 * 3 << 30  # the engine's default
    assert spec.resources()["memory"] == 20 << 30
    assert load_spec(spec.to_yaml()) == spec
    for bad in ("0", "-4GiB", "lots"):
        with pytest.raises(SpecError, match="unlearn.train.memory_per_worker"):
            load_spec(f"unlearn: {{train: {{memory_per_worker: {bad}}}}}\n")


def test_resolved_spec_round_trips():
    spec = load_spec("name: demo\nmemo:\n  variant: fast\n")
    assert load_spec(spec.to_yaml()) == spec


def test_every_shipped_pipeline_validates():
    specs = sorted((ROOT / "pipelines").glob("*.yaml"))
    assert specs, "pipelines/ holds at least the default run"
    for path in specs:
        load_spec_file(path)


def test_published_json_schema_is_current():
    published = json.loads((ROOT / "pipelines" / "schema.json").read_text())
    assert published == PipelineSpec.model_json_schema(), "regenerate with `python -m meow.pipeline schema`"
