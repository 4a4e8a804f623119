"""Read question/answer records from JSONL, JSON, Parquet or CSV, on a local path or any fsspec URI.

Every problem is reported with the file and the line (text formats) or record (Parquet) it is in,
so a user with a 10 000-line forget set can go straight to the bad row. Nothing here logs record
text: the forget set is the data being erased.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from meow.data.records import DataError, QARecord

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "json", "parquet", "csv")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class FieldMapping:
    """Which source columns hold the question and the answer (e.g. `question_field: prompt`)."""

    question_field: str = "question"
    answer_field: str = "answer"


def detect_format(uri: str) -> str:
    for suffix, fmt in _SUFFIX_FORMATS.items():
        if uri.lower().endswith(suffix):
            return fmt
    raise DataError(uri, f"cannot tell the format from the file name; name one of {', '.join(FORMATS)}")


def read_records(
    uri: str,
    mapping: FieldMapping = FieldMapping(),
    fmt: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[QARecord]:
    """All records of one file, validated. Raises `DataError` naming file and line on bad input."""
    fmt = fmt or detect_format(uri)
    if fmt not in FORMATS:
        raise DataError(uri, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise DataError(uri, "file not found") from e
    if not raw.strip():
        raise DataError(uri, "file is empty")
    rows = list(_parquet_rows(uri, raw) if fmt == "parquet" else _text_rows(uri, raw, fmt))
    if not rows:
        raise DataError(uri, "file has no records")
    records = [_to_record(uri, fmt, position, i, row, mapping) for i, (position, row) in enumerate(rows)]
    _warn_duplicates(uri, "record" if fmt == "parquet" else "line", [position for position, _ in rows], records)
    return records


def _decode(uri: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(uri, f"not valid UTF-8 (byte {e.start})", line=line) from e


def _text_rows(uri: str, raw: bytes, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) pairs."""
    text = _decode(uri, raw)
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise DataError(uri, "CSV file has no header row", line=1)
        for row in reader:
            if None in row:
                raise DataError(uri, "row has more cells than the header", line=reader.line_num)
            yield reader.line_num, row
        return
    if fmt == "json" and text.lstrip().startswith("["):
        yield from _json_array_rows(uri, text)
        return
    # JSON Lines (also what TOFU's upstream *.json files are).
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(uri, f"malformed JSON ({e.msg} at column {e.colno})", line=number) from e


def _json_array_rows(uri: str, text: str) -> Iterator[tuple[int, Any]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(uri, f"malformed JSON ({e.msg} at column {e.colno})", line=e.lineno) from e
    # A JSON array has no per-row line numbers after parsing; find where each element starts.
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    for row in rows:
        while text[position] in " \t\r\n,":
            position += 1
        _, end = decoder.raw_decode(text, position)
        yield text.count("\n", 0, position) + 1, row
        position = end


def _parquet_rows(uri: str, raw: bytes) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(uri, f"not a readable Parquet file ({e})") from e
    for number, row in enumerate(table.to_pylist()):
        yield number, row


def _to_record(uri: str, fmt: str, position: int, index: int, row: Any, mapping: FieldMapping) -> QARecord:
    where = {"record": position} if fmt == "parquet" else {"line": position}
    if not isinstance(row, dict):
        raise DataError(uri, f"expected an object with fields, got {type(row).__name__}", **where)
    values = {}
    for role, name in (("question", mapping.question_field), ("answer", mapping.answer_field)):
        if name not in row:
            hint = "" if name == role else f" (the {role}_field)"
            raise DataError(uri, f"missing field {name!r}{hint}", **where)
        value = row[name]
        if not isinstance(value, str):
            raise DataError(uri, f"field {name!r} must be text, got {type(value).__name__}", **where)
        if not value.strip():
            raise DataError(uri, f"empty {role} in field {name!r}", **where)
        values[role] = value
    extra = {k: v for k, v in row.items() if k not in (mapping.question_field, mapping.answer_field, "index")}
    return QARecord(index=index, question=values["question"], answer=values["answer"], extra=extra)


def _warn_duplicates(uri: str, unit: str, positions: list[int], records: list[QARecord]) -> None:
    first_seen: dict[str, int] = {}
    for position, record in zip(positions, records):
        earlier = first_seen.setdefault(record.question, position)
        if earlier != position:
            log.warning("%s, %s %d: duplicate question (first seen at %s %d)", uri, unit, position, unit, earlier)
