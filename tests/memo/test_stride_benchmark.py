"""benchmarks/memo_stride.py: selections re-derived from saved window scores (no models)."""

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("memo_stride")


def fact(index, candidate_windows, original_windows=(0.5, 0.5)):
    return {
        "index": index,
        "original_memo": sum(original_windows) / len(original_windows),
        "original_windows": list(original_windows),
        "candidate_memos": [sum(w) / len(w) for w in candidate_windows],
        "candidate_windows": [list(w) for w in candidate_windows],
    }


# Fact 0: every other window (stride x2) keeps the order. Fact 1: the odd windows carry candidate 2
# above candidate 1, so stride x2 swaps them (top-1 of 3 candidates).
ROWS = [
    fact(0, [(0.9, 0.9, 0.9), (0.1, 0.1, 0.1), (0.5, 0.5, 0.5)]),
    fact(1, [(0.25, 0.0, 0.25), (0.75, 0.75, 0.0), (0.5, 0.5, 0.5)]),
]


def test_stride_multiple_one_reproduces_the_run(bench):
    m = bench.measure(ROWS, 1, "largest", 1, 42)
    assert m["topk_agreement"] == 1.0 and m["regret"] == 0.0 and m["r"] == pytest.approx(1.0)
    assert m["windows"] == 2 * (3 * 3 + 2)


def test_every_other_window_flips_the_fact_whose_odd_windows_disagree(bench):
    m = bench.measure(ROWS, 2, "largest", 1, 42)
    # Windows 0 and 2 of each answer. Fact 1: candidates score 0.25, 0.375, 0.5 (run's own: 1/6,
    # 0.5, 0.5 -> candidate 1, the earlier of the tie). Coarse picks candidate 2; both are worth 0.5.
    assert m["topk_agreement"] == 0.5
    assert m["regret"] == pytest.approx(0.0)
    assert m["windows"] == 2 * (3 * 2 + 1)
    # Spread: fact 0 0.9 - 0.1, fact 1 0.5 - 1/6.
    assert m["spread"] == pytest.approx((0.8 + 1 / 3) / 2)


def test_the_script_reads_a_run_directory_and_prints_json_last(bench, tmp_path, capsys, monkeypatch):
    (tmp_path / "memo").mkdir()
    (tmp_path / "select").mkdir()
    (tmp_path / "memo" / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "memo" / "manifest.json").write_text(json.dumps({"config": {"memo": {"stride": 5, "variant": "fast"}}}))
    (tmp_path / "select" / "manifest.json").write_text(
        json.dumps({"config": {"select": {"rule": "largest", "k": 1, "seed": 42}}})
    )
    monkeypatch.setattr("sys.argv", ["memo_stride.py", "--run", str(tmp_path), "--multiples", "1,2"])
    bench.main()
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"5", "10"}
    assert last["10"]["topk_agreement"] == 0.5


def test_a_run_without_saved_windows_is_refused(bench, tmp_path):
    (tmp_path / "memo").mkdir()
    (tmp_path / "memo" / "scores.jsonl").write_text(json.dumps({"index": 0, "candidate_memos": [0.1]}) + "\n")
    (tmp_path / "memo" / "manifest.json").write_text(json.dumps({"config": {"memo": {"stride": 5}}}))
    with pytest.raises(SystemExit, match="save_windows"):
        bench.load(tmp_path)
