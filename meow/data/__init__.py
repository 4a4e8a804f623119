"""Question/answer records: readers for local and remote files, and the packaged TOFU splits."""

from meow.data.readers import FORMATS, FieldMapping, Limits, iter_records, read_records
from meow.data.records import DataError, QARecord
from meow.data.tofu import (
    AUTHORS,
    ROWS_PER_AUTHOR,
    SPLITS,
    author_of,
    forget_authors,
    load_qa,
    load_tofu,
    tofu_path,
    tofu_rows,
)

__all__ = [
    "AUTHORS",
    "FORMATS",
    "ROWS_PER_AUTHOR",
    "SPLITS",
    "DataError",
    "FieldMapping",
    "Limits",
    "QARecord",
    "author_of",
    "forget_authors",
    "iter_records",
    "load_qa",
    "load_tofu",
    "read_records",
    "tofu_path",
    "tofu_rows",
]
