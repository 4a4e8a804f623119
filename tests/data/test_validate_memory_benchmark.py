"""benchmarks/validate_memory.py on a tiny set: the generated file is valid and the child reports."""

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("validate_memory")


def test_sizes_parse(bench):
    assert [bench.parse_size(s) for s in ("10MB", "1GB", "0.5KB", "300")] == [10 << 20, 1 << 30, 512, 300]


def test_a_generated_set_validates_in_a_fresh_process(bench, tmp_path):
    path = tmp_path / "f.jsonl"
    records = bench.write_forget_set(path, 200_000)
    assert path.stat().st_size >= 200_000
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == records and len({r["question"] for r in rows}) == records
    assert all(100 <= len(r["answer"]) <= 900 for r in rows)
    result = bench.validate(path)
    assert result["records"] == records and 0 < result["peak_rss_mb"] < 300
