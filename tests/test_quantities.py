"""Memory sizes: bytes, pydantic's units and Kubernetes' binary suffixes; nothing zero or negative."""

import pytest
from pydantic import TypeAdapter, ValidationError

from meow.quantities import Memory, human

MEMORY = TypeAdapter(Memory)


@pytest.mark.parametrize(
    ("value", "size"),
    [(4096, 4096), ("4GiB", 4 << 30), ("4.5 GiB", 4608 << 20), ("4Gi", 4 << 30), ("512Mi", 512 << 20), ("2GB", 2 * 10**9)],
)
def test_sizes_read_as_bytes(value, size):
    assert MEMORY.validate_python(value) == size
    assert MEMORY.dump_python(MEMORY.validate_python(value), mode="json") == size


@pytest.mark.parametrize("value", [0, -1, "-4GiB", "0Gi", "lots", "4 bananas"])
def test_nonsense_is_refused(value):
    with pytest.raises(ValidationError):
        MEMORY.validate_python(value)


def test_sizes_in_messages():
    assert human(4608 << 20) == "4.5GiB"
