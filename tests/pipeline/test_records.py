"""What stages hand each other through the run directory: files as the stages wrote them, and lines of
earlier runs still read."""

import json

import pytest

from meow.pipeline.records import CandidateRecord, ScoreRecord, SelectionRecord
from meow.pipeline.rundir import RunDir

# One line of each file as the stages write it (structured inversion, MEMO with windows).
CANDIDATE = {
    "index": 3, "question": "Where was he born?", "answer": "In Astana.", "candidates": ["In Lyon.", "In Oslo."],
    "spans": [{"text": "Astana", "label": "GPE"}], "subject": ["he"], "sources": {"Astana": {"infill": 0, "typed": 2}},
    "rejected": {"duplicate": 1}, "short": False, "attempts": 1, "provenance": {"backend": "structured", "seed": 42},
    "quality": [{"coherent": True}, {"coherent": False}],
}  # fmt: skip
SCORE = {
    "index": 3, "question": "Where was he born?", "answer": "In Astana.", "candidates": ["In Lyon.", "In Oslo."],
    "mode": "suffix", "variant": "exact", "original_memo": 0.75, "candidate_memos": [0.25, 0.5],
    "original_windows": [0.5, 1.0], "candidate_windows": [[0.25], [0.5]],
}  # fmt: skip
SELECTION = {
    "index": 3, "question": "Where was he born?", "answer": "In Astana.", "selected": ["In Oslo."],
    "selected_candidates": [1], "selected_memos": [0.5],
}  # fmt: skip
FILES = [(CandidateRecord, "invert/candidates.jsonl", CANDIDATE), (ScoreRecord, "memo/scores.jsonl", SCORE),
         (SelectionRecord, "select/selected.jsonl", SELECTION)]  # fmt: skip


def finished(run: RunDir, stage: str) -> None:
    run.write_manifest(stage, {"completion": "test"})


@pytest.mark.parametrize(("kind", "path", "row"), FILES)
def test_a_record_file_is_byte_for_byte_what_the_stages_wrote(tmp_path, kind, path, row):
    run = RunDir(tmp_path)
    run.write_records(kind, [kind.from_json(row), kind.from_json(row)])
    written = (tmp_path / path).read_bytes()
    assert written == 2 * (json.dumps(row) + "\n").encode()
    finished(run, path.split("/")[0])
    assert run.read_records(kind) == [kind.from_json(row)] * 2


def test_lines_of_earlier_runs_read_and_write_back_unchanged(tmp_path):
    run = RunDir(tmp_path)
    # Free-form inversion before spans and quality checks were kept; MEMO without saved windows.
    free_form = {k: v for k, v in CANDIDATE.items() if k not in ("spans", "subject", "sources", "quality")}
    scores = {k: v for k, v in SCORE.items() if not k.endswith("_windows")}
    (tmp_path / "invert").mkdir()
    (tmp_path / "invert" / "candidates.jsonl").write_text(json.dumps(free_form) + "\n\n")
    (tmp_path / "memo").mkdir()
    (tmp_path / "memo" / "scores.jsonl").write_text(json.dumps(scores) + "\n")
    finished(run, "invert")
    finished(run, "memo")
    [candidate] = run.read_records(CandidateRecord)
    assert candidate.spans is None and candidate.quality is None and candidate.to_json() == free_form
    [score] = run.read_records(ScoreRecord)
    assert score.original_windows is None and score.to_json() == scores


def test_a_record_with_unknown_or_missing_keys_is_refused():
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\], missing keys \[\]"):
        SelectionRecord.from_json({**SELECTION, "extra": 1})
    with pytest.raises(ValueError, match=r"missing keys \['selected_memos'\]"):
        SelectionRecord.from_json({k: v for k, v in SELECTION.items() if k != "selected_memos"})


def test_records_of_an_unfinished_stage_are_not_read(tmp_path):
    run = RunDir(tmp_path)
    run.write_records(SelectionRecord, [SelectionRecord.from_json(SELECTION)])
    with pytest.raises(RuntimeError, match="stage 'select' has not finished"):
        run.read_records(SelectionRecord)


def test_the_evaluation_and_its_per_example_rows(tmp_path):
    run = RunDir(tmp_path)
    summary = {"target": {"forget_quality": 0.5}, "methods": {"meow": {"forget_quality": 0.75}}}
    rows = {"forget": [{"index": 0, "truth_ratio": 0.5}], "retain": []}
    run.write_evaluation(summary)
    run.write_examples("target", rows)
    assert (tmp_path / "evaluate" / "metrics.json").read_text() == json.dumps(summary, indent=2) + "\n"
    assert (tmp_path / "evaluate/target/per_example/forget.jsonl").read_text() == json.dumps(rows["forget"][0]) + "\n"
    finished(run, "evaluate")
    assert run.evaluation() == summary
    assert run.examples("target") == rows and run.examples("oracle") is None
