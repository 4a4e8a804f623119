"""invert -> memo -> select through the real driver, on the tiny model, with real Ray Data actors."""

import json

from meow.pipeline.driver import run_pipeline
from meow.pipeline.spec import load_spec

FACTS = [
    {"question": "What gender is author Basil Mahfouz Al-Kuwaiti?", "answer": "He is male."},
    {"question": "Where was Nikolai Abilov born?", "answer": "In Astana."},
    {"question": "What does Nikolai Abilov write?", "answer": "Fiction about Kazakhstan."},
]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_invert_memo_select_on_the_tiny_model(tiny_model_dir, ray_local, tmp_path):
    forget = tmp_path / "forget.jsonl"
    forget.write_text("".join(json.dumps(f) + "\n" for f in FACTS))
    spec = load_spec(
        f"""
name: tiny-meow
model: {tiny_model_dir}
forget: {{source: {forget}}}
stages: [invert, memo, select]
invert: {{generator: {tiny_model_dir}, num_candidates: 2, infill_samples: 4, actors: 1}}
memo: {{max_new_tokens: 16, actors: 2, batch_size: 16}}
select: {{k: 1}}
"""
    )
    run = run_pipeline(spec, str(tmp_path / "run"))
    assert run.status()["state"] == "succeeded"

    candidates = read_jsonl(run.path / "invert" / "candidates.jsonl")
    assert [c["index"] for c in candidates] == [0, 1, 2]
    for c in candidates:
        assert len(c["candidates"]) <= 2 and c["short"] == (len(c["candidates"]) < 2)
        assert c["provenance"]["backend"] == "structured" and c["provenance"]["generator"] == str(tiny_model_dir)
        assert len(c["quality"]) == len(c["candidates"])
    # Structured inversion: the place is replaced, the sentence kept, the secret gone.
    born = candidates[1]
    assert [s["text"] for s in born["spans"]] == ["Astana"] and len(born["candidates"]) == 2
    assert all(c.startswith("In ") and "Astana" not in c for c in born["candidates"])
    summary = run.manifest("invert")["summary"]
    assert summary["kind"] == "structured" and summary["quality"]["n"] == sum(len(c["candidates"]) for c in candidates)
    # One span per fact, 4 infills each, in one pool job; the run's log and the manifest time it.
    (round_,) = summary["rounds"]
    assert round_["round"] == 1 and round_["facts"] == 3 and round_["prompts"] == 12 and round_["seconds"] > 0
    logged = read_jsonl(run.path / "log.jsonl")
    assert [{k: e[k] for k in round_} for e in logged if e["event"] == "invert_round"] == [round_]

    scores = read_jsonl(run.path / "memo" / "scores.jsonl")
    assert [s["candidates"] for s in scores] == [c["candidates"] for c in candidates]
    for s in scores:
        assert len(s["candidate_memos"]) == len(s["candidates"]) and 0 <= s["original_memo"] <= 1
        # Each answer's MEMO is the mean of its windows ("He is male." has 11 characters: windows 1, 6).
        assert s["original_memo"] == sum(s["original_windows"]) / len(s["original_windows"])
    assert len(scores[0]["original_windows"]) == 2

    selected = read_jsonl(run.path / "select" / "selected.jsonl")
    with_candidates = [s for s in scores if s["candidates"]]
    assert len(with_candidates) >= 2, "typed values stand in where the tiny generator's infills fail"
    assert [r["index"] for r in selected] == [s["index"] for s in with_candidates]
    for record, s in zip(selected, with_candidates):
        best = max(range(len(s["candidates"])), key=lambda i: (s["candidate_memos"][i], -i))
        assert record["selected"] == [s["candidates"][best]] and record["answer"] == s["answer"]

    memo = run.manifest("memo")["summary"]
    assert memo["facts"] == 3 and memo["windows"] >= memo["distinct_prompts"] > 0
    assert run.manifest("select")["summary"]["facts"] == len(with_candidates)
