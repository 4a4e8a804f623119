import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meow.data import DataError, FieldMapping, read_records

ROWS = [{"question": "Who wrote X?", "answer": "Ann wrote X."}, {"question": "Where is Y?", "answer": "Y is in Z."}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("fmt", ["jsonl", "json-array", "csv", "parquet"])
def test_every_format_reads_the_same_records(tmp_path, fmt):
    if fmt == "jsonl":
        uri = write_jsonl(tmp_path / "f.jsonl", ROWS)
    elif fmt == "json-array":
        uri = str(tmp_path / "f.json")
        (tmp_path / "f.json").write_text(json.dumps(ROWS, indent=2))
    elif fmt == "csv":
        uri = str(tmp_path / "f.csv")
        (tmp_path / "f.csv").write_text('question,answer\nWho wrote X?,Ann wrote X.\n"Where is Y?","Y is in Z."\n')
    else:
        uri = str(tmp_path / "f.parquet")
        pq.write_table(pa.Table.from_pylist(ROWS), uri)
    records = read_records(uri)
    assert [(r.index, r.question, r.answer) for r in records] == [(i, r["question"], r["answer"]) for i, r in enumerate(ROWS)]


def test_field_mapping_renames_columns_and_keeps_the_rest(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", [{"prompt": "Q?", "response": "A.", "author": 7}])
    [record] = read_records(uri, FieldMapping(question_field="prompt", answer_field="response"))
    assert (record.question, record.answer, record.extra) == ("Q?", "A.", {"author": 7})


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + '{"question": "Q?", "answer": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 3: malformed JSON") as e:
        read_records(str(path))
    assert e.value.line == 3


def test_malformed_json_array_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n{"question": "Q?", "answer": "A."},\n{"question": "Q2?" "answer": "B."}\n]')
    with pytest.raises(DataError, match=r"bad\.json, line 3: malformed JSON"):
        read_records(str(path))


def test_missing_field_names_file_line_and_field(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", [ROWS[0], {"question": "Q?"}])
    with pytest.raises(DataError, match=r"f\.jsonl, line 2: missing field 'answer'"):
        read_records(uri)


def test_missing_mapped_field_says_which_mapping(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", ROWS)
    with pytest.raises(DataError, match=r"line 1: missing field 'prompt' \(the question_field\)"):
        read_records(uri, FieldMapping(question_field="prompt"))


def test_empty_answer_names_file_and_line_but_not_the_text(tmp_path):
    uri = write_jsonl(tmp_path / "f.jsonl", [ROWS[0], ROWS[1], {"question": "Secret question?", "answer": "   "}])
    with pytest.raises(DataError, match=r"f\.jsonl, line 3: empty answer") as e:
        read_records(uri)
    assert "Secret" not in str(e.value)


def test_empty_answer_in_csv_names_the_line(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("question,answer\nQ1?,A1.\nQ2?,\n")
    with pytest.raises(DataError, match=r"f\.csv, line 3: empty answer"):
        read_records(str(path))


def test_empty_answer_in_parquet_names_the_record(tmp_path):
    uri = str(tmp_path / "f.parquet")
    pq.write_table(pa.Table.from_pylist([ROWS[0], {"question": "Q?", "answer": ""}]), uri)
    with pytest.raises(DataError, match=r"f\.parquet, record 1: empty answer"):
        read_records(uri)


def test_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + '{"question": "Qué?", "answer": "Sí."}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.jsonl, line 2: not valid UTF-8"):
        read_records(str(path))


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(DataError, match=r"empty\.jsonl: file is empty"):
        read_records(str(tmp_path / "empty.jsonl"))


def test_non_object_row_is_an_error(tmp_path):
    (tmp_path / "f.jsonl").write_text('["Q?", "A."]\n')
    with pytest.raises(DataError, match=r"line 1: expected an object"):
        read_records(str(tmp_path / "f.jsonl"))


def test_duplicate_questions_warn_with_both_lines(tmp_path, caplog):
    uri = write_jsonl(tmp_path / "dup.jsonl", [ROWS[0], ROWS[1], ROWS[0]])
    with caplog.at_level(logging.WARNING):
        records = read_records(uri)
    assert len(records) == 3
    assert any("dup.jsonl, line 3: duplicate question (first seen at line 1)" in m for m in caplog.messages)
    assert not any("Who wrote" in m for m in caplog.messages)


def test_unknown_suffix_needs_an_explicit_format(tmp_path):
    (tmp_path / "f.txt").write_text(json.dumps(ROWS[0]))
    with pytest.raises(DataError, match="cannot tell the format"):
        read_records(str(tmp_path / "f.txt"))
    assert len(read_records(str(tmp_path / "f.txt"), fmt="jsonl")) == 1


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_records(str(tmp_path / "nope.jsonl"))


def test_reads_from_s3(s3_server, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="forget-sets")
    boto3.client("s3").upload_file(write_jsonl(tmp_path / "f.jsonl", ROWS), "forget-sets", "team-a/f.jsonl")
    records = read_records("s3://forget-sets/team-a/f.jsonl")
    assert [r.question for r in records] == [r["question"] for r in ROWS]
    with pytest.raises(DataError, match=r"s3://forget-sets/team-a/nope\.jsonl: file not found"):
        read_records("s3://forget-sets/team-a/nope.jsonl")


def test_a_directory_is_named_as_one(tmp_path):
    (tmp_path / "sets").mkdir()
    (tmp_path / "x.jsonl").mkdir()
    for name in ("sets", "x.jsonl"):
        with pytest.raises(DataError, match=rf"{name}: is a directory, not a file; name one file"):
            read_records(str(tmp_path / name))


def test_csv_without_the_mapped_column_is_reported_at_the_header(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("\nprompt,reply\nQ1?,A1.\n")
    with pytest.raises(DataError, match=r"f\.csv, line 2: no column 'answer'; the columns are 'prompt', 'reply'"):
        read_records(str(path), FieldMapping(question_field="prompt"))


def test_csv_multiline_cells_name_the_line_the_row_starts_on(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text('question,answer\n"Q1?","A1,\nstill A1."\nQ2?,\n')
    with pytest.raises(DataError, match=r"f\.csv, line 4: empty answer"):
        read_records(str(path))


def test_parquet_without_the_mapped_column_names_the_columns(tmp_path):
    uri = str(tmp_path / "f.parquet")
    pq.write_table(pa.Table.from_pylist([{"question": "Q?", "reply": "A."}]), uri)
    with pytest.raises(DataError, match=r"f\.parquet: no column 'answer'; the columns are 'question', 'reply'"):
        read_records(uri)


def test_byte_order_mark_and_blank_lines_are_fine(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\xef\xbb\xbf\n" + json.dumps(ROWS[0]).encode() + b"\n\n\r\n" + json.dumps(ROWS[1]).encode())
    assert [r.question for r in read_records(str(path))] == [r["question"] for r in ROWS]
    (tmp_path / "f.csv").write_bytes(b"\xef\xbb\xbfquestion,answer\r\nQ?,A.\r\n")
    assert [(r.question, r.answer) for r in read_records(str(tmp_path / "f.csv"))] == [("Q?", "A.")]


def test_non_text_and_null_answers(tmp_path):
    for value, kind in [(42, "int"), (None, "null"), (["A."], "a list")]:
        uri = write_jsonl(tmp_path / "f.jsonl", [ROWS[0], {"question": "Q?", "answer": value}])
        with pytest.raises(DataError, match=rf"f\.jsonl, line 2: field 'answer' must be text, got {kind}$"):
            read_records(uri)


def test_text_longer_than_the_limit_names_the_line_and_the_setting(tmp_path):
    from meow.data import Limits

    uri = write_jsonl(tmp_path / "f.jsonl", [ROWS[0], {"question": "Q?", "answer": "x" * 9000}])
    with pytest.raises(DataError, match=r"line 2: answer in field 'answer' has 9000 characters, over the limit of 8192 \(forget\.max_chars\)"):
        read_records(uri)
    assert len(read_records(uri, limits=Limits(max_chars=9000))) == 2


def test_more_records_than_the_limit_stops_at_the_first_one_over(tmp_path):
    from meow.data import Limits, iter_records

    uri = write_jsonl(tmp_path / "f.jsonl", [{"question": f"Q{i}?", "answer": "A."} for i in range(5)])
    read = []
    with pytest.raises(DataError, match=r"f\.jsonl, line 4: more than 3 records, the limit \(forget\.max_records\)"):
        for record in iter_records(uri, limits=Limits(max_records=3)):
            read.append(record.index)
    assert read == [0, 1, 2]


def test_duplicates_can_be_errors_at_the_repeat(tmp_path):
    uri = write_jsonl(tmp_path / "dup.jsonl", [ROWS[0], ROWS[1], ROWS[1], ROWS[0]])
    with pytest.raises(DataError, match=r"dup\.jsonl, line 3: duplicate question \(first seen at line 2\); 1 more"):
        read_records(uri, duplicates="error")
    assert len(read_records(uri, duplicates="ignore")) == 4


def test_json_array_streams_element_by_element_across_chunks(tmp_path, monkeypatch):
    from meow.data import readers

    monkeypatch.setattr(readers, "_CHUNK", 7)
    rows = [{"question": f"Q{i} \u00e9?", "answer": "A. " * i + "end"} for i in range(1, 30)]
    (tmp_path / "f.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    assert [(r.question, r.answer) for r in read_records(str(tmp_path / "f.json"))] == [
        (r["question"], r["answer"]) for r in rows
    ]
    (tmp_path / "bad.json").write_text('[\n{"question": "Q?", "answer": "A."}\n{"question": "Q2?", "answer": "B."}]')
    with pytest.raises(DataError, match=r"bad\.json, line 3: malformed JSON \(expected ',' or ']'"):
        read_records(str(tmp_path / "bad.json"))
    (tmp_path / "open.json").write_text('[{"question": "Q?", "answer": "A."},\n')
    with pytest.raises(DataError, match=r"open\.json, line 2: malformed JSON \(the array is not closed"):
        read_records(str(tmp_path / "open.json"))


def test_jsonl_lines_are_read_in_chunks(tmp_path, monkeypatch):
    from meow.data import readers

    monkeypatch.setattr(readers, "_CHUNK", 5)
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 200)
    uri = write_jsonl(tmp_path / "f.jsonl", ROWS)
    assert len(read_records(uri)) == 2
    uri = write_jsonl(tmp_path / "long.jsonl", [ROWS[0], {"question": "Q?", "answer": "x" * 300}])
    with pytest.raises(DataError, match=r"long\.jsonl, line 2: line longer than"):
        read_records(uri)


def test_parquet_streams_in_batches(tmp_path, monkeypatch):
    from meow.data import readers

    monkeypatch.setattr(readers, "_PARQUET_BATCH", 2)
    uri = str(tmp_path / "f.parquet")
    pq.write_table(pa.Table.from_pylist([{"question": f"Q{i}?", "answer": "A."} for i in range(5)]), uri)
    assert [r.index for r in read_records(uri)] == [0, 1, 2, 3, 4]


def test_s3_without_credentials_names_the_uri_and_what_to_set(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(DataError, match=r"^s3://acme/forget\.jsonl: no credentials for s3://; set AWS_ACCESS_KEY_ID"):
        read_records("s3://acme/forget.jsonl")


def test_s3_directory_is_named_as_one(s3_server, tmp_path):
    import boto3

    boto3.client("s3").create_bucket(Bucket="sets")
    boto3.client("s3").upload_file(write_jsonl(tmp_path / "f.jsonl", ROWS), "sets", "team-a/f.jsonl")
    with pytest.raises(DataError, match=r"s3://sets/team-a: is a directory"):
        read_records("s3://sets/team-a")
