"""Read question/answer records from JSONL, JSON, Parquet or CSV, on a local path or any fsspec URI.

Records stream: JSON Lines and CSV a line at a time, a JSON array an element at a time, Parquet a
batch at a time, so that checking a forget set of any size holds one record (plus a 16-byte
fingerprint per record for duplicates) in memory, not the file (`iter_records`; `read_records` is
the list of them).

Every problem is reported with the file and the line (text formats) or record (Parquet) it is in,
so a user with a 10 000-line forget set can go straight to the bad row. Nothing here logs record
text: the forget set is the data being erased.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import fsspec

from meow.data.records import DataError, QARecord

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "json", "parquet", "csv")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# A question or an answer longer than this is almost surely a mistake (a whole document in one
# cell); TOFU's longest answer is 418 characters.
MAX_CHARS = 8192
MAX_RECORDS = 1_000_000
# One line (JSONL, CSV) or one element (JSON array) may hold a record's other fields too (TOFU's
# perturbed answers: 3.3 KB); more than this is not a record, and reading it whole is not bounded.
MAX_LINE_BYTES = 16 << 20
_CHUNK = 1 << 20
_PARQUET_BATCH = 1024
Duplicates = Literal["error", "warn", "ignore"]


@dataclass(frozen=True)
class FieldMapping:
    """Which source columns hold the question and the answer (e.g. `question_field: prompt`)."""

    question_field: str = "question"
    answer_field: str = "answer"


@dataclass(frozen=True)
class Limits:
    """What a file may hold, checked record by record while it streams.

    `setting` names where a user changes them (the spec keys), for the error messages."""

    max_chars: int = MAX_CHARS
    max_records: int = MAX_RECORDS
    setting: str = "forget"


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
    *,
    limits: Limits = Limits(),
    duplicates: Duplicates = "warn",
) -> list[QARecord]:
    """All records of one file, validated. Raises `DataError` naming file and line on bad input."""
    return list(iter_records(uri, mapping, fmt, storage_options, limits=limits, duplicates=duplicates))


def iter_records(
    uri: str,
    mapping: FieldMapping = FieldMapping(),
    fmt: str | None = None,
    storage_options: dict[str, Any] | None = None,
    *,
    limits: Limits = Limits(),
    duplicates: Duplicates = "warn",
) -> Iterator[QARecord]:
    """The records of one file as it streams, each validated; raises `DataError` at the first bad one.

    Duplicate questions are found once the whole file has streamed (from 8-byte fingerprints):
    `error` raises at the first repeat's line after the last record, `warn` logs them."""
    if fmt is not None and fmt not in FORMATS:
        raise DataError(uri, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    fs, path = _filesystem(uri, storage_options)
    _refuse_directory(uri, fs, path)
    try:
        fmt = fmt or detect_format(uri)
    except DataError:
        _refuse_remote_directory(uri, fs, path)
        raise
    unit = "record" if fmt == "parquet" else "line"
    seen = _Fingerprints()
    count = 0
    try:
        with fs.open(path, "rb") as f:
            rows = _parquet_rows(uri, f, mapping) if fmt == "parquet" else _text_rows(uri, f, fmt, mapping)
            for position, row in rows:
                if count >= limits.max_records:
                    raise DataError(
                        uri,
                        f"more than {limits.max_records} records, the limit ({limits.setting}.max_records)",
                        **{unit: position},
                    )
                record = _to_record(uri, unit, position, count, row, mapping, limits)
                if duplicates != "ignore":
                    seen.add(record.question, position)
                count += 1
                yield record
    except DataError:
        raise
    except Exception as e:
        storage = storage_error(uri, e)
        if storage is None:
            raise
        if storage.problem == "file not found":
            _refuse_remote_directory(uri, fs, path)
        raise storage from e
    if count == 0:
        raise DataError(uri, "file has no records")
    if duplicates != "ignore":
        _report_duplicates(uri, unit, seen.repeats(), duplicates, limits.setting)


def storage_error(uri: str, error: BaseException) -> DataError | None:
    """A `DataError` that says what to do about a storage failure (missing file, credentials,
    endpoint, permissions), or None when `error` is not one."""
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    chain = []
    while error is not None and len(chain) < 8:
        chain.append(error)
        error = error.__cause__ or error.__context__
    names = {type(e).__name__ for e in chain}
    if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return DataError(
            uri,
            f"no credentials for {scheme}://; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
            "and AWS_ENDPOINT_URL for an S3-compatible store other than AWS",
        )
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError"}:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "the AWS default"
        return DataError(uri, f"cannot reach the object store endpoint ({endpoint}); check AWS_ENDPOINT_URL")
    first = chain[0]
    if isinstance(first, IsADirectoryError):
        return DataError(uri, "is a directory, not a file; name one file (JSONL, JSON, Parquet or CSV)")
    if isinstance(first, FileNotFoundError):
        return DataError(uri, "file not found")
    if isinstance(first, PermissionError):
        hint = "; check the credentials in AWS_ACCESS_KEY_ID/AWS_PROFILE" if scheme in ("s3", "s3a") else ""
        return DataError(uri, f"access denied{hint}")
    if isinstance(first, ImportError):
        return DataError(uri, f"no filesystem installed for {scheme}:// ({first})")
    return None


def _filesystem(uri: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    try:
        return fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError) as e:
        raise DataError(uri, f"cannot read this kind of location ({type(e).__name__}: {e})") from None


def _refuse_directory(uri: str, fs: Any, path: str) -> None:
    """A local directory is told apart before guessing a format (a remote one costs a request and
    shows up as not found or an unknown suffix; `storage_error` and the caller name it)."""
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)) and os.path.isdir(path):
        raise DataError(uri, "is a directory, not a file; name one file (JSONL, JSON, Parquet or CSV)")


def _refuse_remote_directory(uri: str, fs: Any, path: str) -> None:
    """After a remote file was not found (or has no known suffix): is it a prefix with files under it?"""
    try:
        directory = fs.isdir(path)
    except Exception:  # noqa: BLE001 - the caller's error stands; this only makes it more precise
        return
    if directory:
        raise DataError(uri, "is a directory, not a file; name one file (JSONL, JSON, Parquet or CSV)")


def _raw_lines(uri: str, f: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary stream (with their b"\\n"), read in chunks: no line over MAX_LINE_BYTES
    is held (fsspec's remote files have no `readline(limit)`)."""
    pending = b""
    number = 0
    while chunk := f.read(_CHUNK):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line + b"\n"
        number += len(lines)
        if len(pending) > MAX_LINE_BYTES:
            raise DataError(uri, f"line longer than {MAX_LINE_BYTES >> 20} MiB", line=number + 1)
    if pending:
        yield pending


def _text_lines(uri: str, f: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its ending) pairs; a UTF-8 byte-order mark is dropped."""
    for number, raw in enumerate(_raw_lines(uri, f), start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                uri,
                f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8",
                line=number,
            ) from None


def _text_rows(uri: str, f: IO[bytes], fmt: str, mapping: FieldMapping) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) pairs."""
    head = f.read(64 << 10)
    if not head.strip().removeprefix(codecs.BOM_UTF8).strip():
        raise DataError(uri, "file is empty")
    f.seek(0)
    if fmt == "csv":
        yield from _csv_rows(uri, _text_lines(uri, f), mapping)
    elif fmt == "json" and head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"["):
        yield from _json_array_rows(uri, f)
    else:
        # JSON Lines (also what TOFU's upstream *.json files are).
        for number, line in _text_lines(uri, f):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(uri, f"malformed JSON ({e.msg} at column {e.colno})", line=number) from None


def _csv_rows(uri: str, lines: Iterable[tuple[int, str]], mapping: FieldMapping) -> Iterator[tuple[int, Any]]:
    numbers: list[int] = [0]

    def text() -> Iterator[str]:
        for number, line in lines:
            numbers[0] = number
            yield line

    reader = csv.reader(text())
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            if not cells:
                start = numbers[0] + 1
                continue
            if header is None:
                header = cells
                _check_columns(uri, header, mapping, line=start)
            elif len(cells) > len(header):
                raise DataError(uri, f"row has {len(cells)} cells, the header {len(header)}", line=start)
            else:
                yield start, dict(zip(header, cells))
            start = numbers[0] + 1
    except csv.Error as e:
        raise DataError(uri, f"malformed CSV ({e})", line=numbers[0]) from None
    if header is None:
        raise DataError(uri, "CSV file has no header row", line=1)


def _check_columns(uri: str, columns: list[str], mapping: FieldMapping, **where: int) -> None:
    for role, name in (("question", mapping.question_field), ("answer", mapping.answer_field)):
        if name not in columns:
            hint = "" if name == role else f" (the {role}_field)"
            shown = ", ".join(repr(c) for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
            raise DataError(uri, f"no column {name!r}{hint}; the columns are {shown}", **where)


def _json_array_rows(uri: str, f: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array, one at a time, with the line each starts on."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()
    text, pos, line, eof = "", 0, 1, False

    def more() -> bool:
        nonlocal text, pos, eof
        if eof:
            return False
        raw = f.read(_CHUNK)
        eof = not raw
        try:
            decoded = utf8.decode(raw, final=eof)
        except UnicodeDecodeError as e:
            at = line + text.count("\n", pos) + raw[: max(e.start, 0)].count(b"\n")
            raise DataError(uri, "not valid UTF-8; save the file as UTF-8", line=at) from None
        # Drop what is parsed already: memory holds the current element and one chunk.
        text, pos = text[pos:] + decoded, 0
        return True

    def skip_space() -> str | None:
        """The next non-space character (not consumed), reading more as needed; None at the end."""
        nonlocal pos, line
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                line += text[pos] == "\n"
                pos += 1
            if pos < len(text):
                return text[pos]
            if not more():
                return None

    def malformed(problem: str, at_line: int) -> DataError:
        return DataError(uri, f"malformed JSON ({problem})", line=at_line)

    skip_space()
    pos += 1  # the "[" the caller saw
    first = True
    while True:
        char = skip_space()
        if char is None:
            raise malformed("the array is not closed with ']'", line)
        if char == "]":
            pos += 1
            break
        if not first:
            if char != ",":
                raise malformed("expected ',' or ']' between elements", line)
            pos += 1
            if skip_space() is None:
                raise malformed("the array is not closed with ']'", line)
        first = False
        while True:
            try:
                row, end = decoder.raw_decode(text, pos)
                break
            except json.JSONDecodeError as e:
                # An element cut by the chunk boundary fails at the end of the text (or inside a
                # string running to it); it parses once more text is in.
                cut = e.msg.startswith("Unterminated string") or e.pos >= len(text) - 6
                if not cut or not more():
                    raise malformed(e.msg, line + text.count("\n", pos, e.pos)) from None
                if len(text) - pos > MAX_LINE_BYTES:
                    raise DataError(uri, f"an element longer than {MAX_LINE_BYTES >> 20} MiB", line=line) from None
        yield line, row
        line += text.count("\n", pos, end)
        pos = end
    if skip_space() is not None:
        raise malformed("text after the closing ']'", line)


def _parquet_rows(uri: str, f: IO[bytes], mapping: FieldMapping) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(uri, f"not a readable Parquet file ({e})") from None
    _check_columns(uri, parquet.schema_arrow.names, mapping)
    number = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
        for row in batch.to_pylist():
            yield number, row
            number += 1


def _to_record(
    uri: str, unit: str, position: int, index: int, row: Any, mapping: FieldMapping, limits: Limits
) -> QARecord:
    where = {unit: position}
    if not isinstance(row, dict):
        raise DataError(uri, f"expected an object with fields, got {_kind(row)}", **where)
    values = {}
    for role, name in (("question", mapping.question_field), ("answer", mapping.answer_field)):
        if name not in row:
            hint = "" if name == role else f" (the {role}_field)"
            raise DataError(uri, f"missing field {name!r}{hint}", **where)
        value = row[name]
        if not isinstance(value, str):
            raise DataError(uri, f"field {name!r} must be text, got {_kind(value)}", **where)
        if not value.strip():
            raise DataError(uri, f"empty {role} in field {name!r}", **where)
        if len(value) > limits.max_chars:
            raise DataError(
                uri,
                f"{role} in field {name!r} has {len(value)} characters, over the limit of {limits.max_chars} "
                f"({limits.setting}.max_chars)",
                **where,
            )
        values[role] = value
    extra = {k: v for k, v in row.items() if k not in (mapping.question_field, mapping.answer_field, "index")}
    return QARecord(index=index, question=values["question"], answer=values["answer"], extra=extra)


def _kind(value: Any) -> str:
    return {type(None): "null", dict: "an object", list: "a list", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


class _Fingerprints:
    """An 8-byte hash and the position of every question: 16 bytes a record, whatever the text."""

    def __init__(self) -> None:
        self.hashes = array("q")
        self.positions = array("q")

    def add(self, question: str, position: int) -> None:
        self.hashes.append(hash(question))
        self.positions.append(position)

    def repeats(self) -> list[tuple[int, int]]:
        """(position, position of the first occurrence) of every repeat, in file order."""
        if len(self.hashes) < 2:
            return []
        import numpy as np

        hashes = np.frombuffer(self.hashes, dtype=np.int64)
        positions = np.frombuffer(self.positions, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        if not len(repeat):
            return []
        # The first occurrence of each run of equal hashes (stable sort: file order within a run).
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        first = starts[np.searchsorted(starts, repeat, side="right") - 1]
        pairs = sorted(zip(positions[order[repeat]].tolist(), positions[order[first]].tolist()))
        return pairs


def _report_duplicates(uri: str, unit: str, repeats: list[tuple[int, int]], mode: Duplicates, setting: str) -> None:
    if not repeats:
        return
    position, first = repeats[0]
    more = f"; {len(repeats) - 1} more repeated question(s)" if len(repeats) > 1 else ""
    if mode == "error":
        raise DataError(
            uri, f"duplicate question (first seen at {unit} {first}){more}; set {setting}.duplicates: warn to keep them",
            **{unit: position},
        )
    for position, first in repeats[:5]:
        log.warning("%s, %s %d: duplicate question (first seen at %s %d)", uri, unit, position, unit, first)
    if len(repeats) > 5:
        log.warning("%s: %d more duplicate questions", uri, len(repeats) - 5)
