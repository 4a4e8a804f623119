"""`meow.pipeline.validate`: the spec and everything it names, checked in-process before a run."""

from __future__ import annotations

import json

import pytest

from meow.pipeline.validate import InvalidRun, check_file, check_text

ROWS = [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(3)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_default_spec_and_a_file_forget_set_validate(tmp_path):
    found = check_file("pipelines/default.yaml")
    assert found.forget_records == 40 and found.models == {"model": "smollm2 (embedded)", "invert.generator": "smollm2 (embedded)"}
    found = check_file("pipelines/default.yaml", forget=write_jsonl(tmp_path / "f.jsonl", ROWS))
    assert found.forget_records == 3 and "f.jsonl: 3 records" in found.summary()


def test_the_model_option_replaces_the_model_to_unlearn(tmp_path, tiny_model_dir):
    found = check_file("pipelines/people-facts.yaml", model=str(tiny_model_dir))
    assert found.spec.model == str(tiny_model_dir) and found.models["model"] == f"{tiny_model_dir} (directory)"
    assert found.forget_records == 40  # the example CSV through the spec's field mapping
    with pytest.raises(InvalidRun, match=r"^--model: '.*nope' is neither an embedded model"):
        check_file("pipelines/people-facts.yaml", model=str(tmp_path / "nope"))


def test_limits_come_from_the_forget_spec(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", ROWS + [{"question": "Q?", "answer": "x" * 20}])
    with pytest.raises(InvalidRun, match=r"f\.jsonl, line 4: answer .* has 20 characters, over the limit of 10 \(forget\.max_chars\)"):
        check_text(f"forget: {{source: {uri}, max_chars: 10}}\n")
    with pytest.raises(InvalidRun, match=r"f\.jsonl, line 3: more than 2 records, the limit \(forget\.max_records\)"):
        check_text(f"forget: {{source: {uri}, max_records: 2}}\n")
    assert check_text(f"forget: {{source: {uri}}}\n").forget_records == 4


def test_duplicates_are_an_error_unless_the_spec_says_warn(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", ROWS + [ROWS[1]])
    with pytest.raises(InvalidRun, match=r"line 4: duplicate question \(first seen at line 2\); set forget\.duplicates: warn"):
        check_text(f"forget: {{source: {uri}}}\n")
    assert check_text(f"forget: {{source: {uri}, duplicates: warn}}\n").forget_records == 4


def test_file_level_errors_say_which_key_named_the_file(tmp_path):
    text = f"name: t\nforget:\n  source: {tmp_path / 'nope.jsonl'}\n"
    with pytest.raises(InvalidRun, match=r"nope\.jsonl: file not found \(named by forget\.source in s\.yaml, line 3\)$"):
        check_text(text, "s.yaml")


def test_model_references_are_checked_without_loading_them(tmp_path):
    with pytest.raises(InvalidRun, match=r"^s\.yaml, line 2, key model: '/no/such/model' is neither an embedded model \(smollm2\)"):
        check_text("name: t\nmodel: /no/such/model\n", "s.yaml")
    (tmp_path / "m").mkdir()
    with pytest.raises(InvalidRun, match=r"key model: .*/m: not a Hugging Face model directory \(no config\.json\)"):
        check_text(f"model: {tmp_path / 'm'}\n")
    (tmp_path / "m" / "config.json").write_text("{}")
    assert check_text(f"model: {tmp_path / 'm'}\nstages: [invert]\n").models["model"].endswith("(directory)")
    with pytest.raises(InvalidRun, match=r"line 3, key evaluate\.oracle: 'nope' is neither"):
        check_text(f"model: {tmp_path / 'm'}\nstages: [evaluate]\nevaluate: {{oracle: nope}}\n", "s.yaml")


def test_a_method_that_needs_retain_data_without_any_fails_now(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", ROWS)
    spec = f"forget: {{source: {uri}}}\nstages: [unlearn]\nunlearn:\n  method: grad_diff\n"
    with pytest.raises(InvalidRun, match=r"line 4, key unlearn\.method: method 'grad_diff' needs a retain set"):
        check_text(spec)
    assert check_text("stages: [unlearn]\nunlearn: {method: grad_diff}\n").forget_records == 40, "forget01 -> retain99"
    retain = write_jsonl(tmp_path / "r.jsonl", ROWS[:2])
    assert check_text(spec.replace("grad_diff\n", f"grad_diff\n  retain: {retain}\n")).retain_records == 2


def test_retain_file_is_streamed_too(tmp_path):
    bad = tmp_path / "r.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{\n")
    with pytest.raises(InvalidRun, match=r"r\.jsonl, line 2: malformed JSON"):
        check_text(f"stages: [unlearn]\nunlearn: {{retain: {bad}}}\n")


def test_spec_errors_are_one_line_with_a_count(tmp_path):
    with pytest.raises(InvalidRun) as e:
        check_text("memo: {strid: 3}\nseed: x\n", "s.yaml")
    assert "\n" not in str(e.value) and str(e.value).endswith("(+1 more errors)")


def test_a_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(InvalidRun, match=r"--run-dir: .*runs is a file"):
        check_text("name: t\n", run_dir=str(tmp_path / "runs" / "t"))


def test_s3_forget_set_and_model(s3_server, tmp_path):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="acme")
    s3.upload_file(write_jsonl(tmp_path / "f.jsonl", ROWS), "acme", "sets/f.jsonl")
    s3.put_object(Bucket="acme", Key="models/tiny/config.json", Body=b"{}")
    found = check_text("model: s3://acme/models/tiny\nstages: [invert]\nforget: {source: s3://acme/sets/f.jsonl}\n")
    assert found.forget_records == 3 and found.models["model"] == "s3://acme/models/tiny (remote)"
    with pytest.raises(InvalidRun, match=r"key model: s3://acme/models/none: no config\.json under this prefix"):
        check_text("model: s3://acme/models/none\n")
    with pytest.raises(InvalidRun, match=r"^s3://acme/sets: is a directory"):
        check_text("forget: {source: s3://acme/sets}\n")


def test_an_s3_run_dir_needs_credentials_not_an_existing_prefix(s3_server, monkeypatch):
    import boto3
    import s3fs

    boto3.client("s3").create_bucket(Bucket="runs")
    assert check_text("name: t\n", run_dir="s3://runs/team-a/new").forget_records == 40
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec reuses the client made with credentials
    with pytest.raises(InvalidRun, match=r"^--run-dir: s3://runs/team-a/new: no credentials for s3://"):
        check_text("name: t\n", run_dir="s3://runs/team-a/new")
