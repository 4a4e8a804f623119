"""Question/answer records: readers for local and remote files, and the packaged TOFU splits."""

from meow.data.readers import FORMATS, FieldMapping, read_records
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
    "QARecord",
    "author_of",
    "forget_authors",
    "load_qa",
    "load_tofu",
    "read_records",
    "tofu_path",
    "tofu_rows",
]
