"""Memory sizes in specs and settings: a number of bytes, or a number with a unit.

Units as pydantic's `ByteSize` reads them (`4GiB`, `4.5 GiB`, `512MB`; `GB` is 10^9 bytes, `GiB`
2^30) and Kubernetes' binary suffixes (`4Gi`, `512Mi`), so a value copied from a Helm chart means the
same here. A validated size is a plain int of bytes: what specs dump, hashes cover and Ray's `memory`
option takes.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ByteSize, WithJsonSchema

_KUBERNETES_BINARY = re.compile(r"^\s*(\d*\.?\d+)\s*([KMGTPE]i)\s*$")


def _kubernetes_suffix(value: object) -> object:
    if isinstance(value, str) and (match := _KUBERNETES_BINARY.match(value)):
        return f"{match[1]}{match[2]}B"
    return value


def _positive(size: ByteSize) -> ByteSize:
    if size <= 0:
        raise ValueError("a memory size must be more than 0 bytes")
    return size


Memory = Annotated[
    ByteSize,
    BeforeValidator(_kubernetes_suffix),
    AfterValidator(_positive),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*\d*\.?\d+\s*[A-Za-z]*\s*$"},
            ],
            "description": "bytes, or a size with a unit: 4GiB, 4.5 GiB, 512MB, 4Gi",
        }
    ),
]


def gib(size: float) -> ByteSize:
    """`size` GiB, as a default of a `Memory` field."""
    return ByteSize(int(size * (1 << 30)))


def human(size: float) -> str:
    """A size for messages: `4.5GiB`."""
    return ByteSize(int(size)).human_readable()
