"""The `select` stage (method spec 1.3): the inverted facts each forget fact is unlearned with.

Reads the MEMO stage's `ScoreRecord`s and writes `selected.jsonl`, one `SelectionRecord` per fact
(`meow/pipeline/records.py`): `index`, `question`, `answer` (the original), `selected` (candidate
texts, at most k, best first by the rule) plus `selected_candidates` (their positions in the fact's
candidate list) and `selected_memos` (their MEMO scores).

Order matters to the trainer: the reference recipe trains each fact on 4 sequences,
`selected[i % k]` for i = 0..3, i.e. [top1, top2, top3, top1] with k = 3 (method spec 1.4). Facts
with no candidate at all (the generator never produced a usable one) cannot be unlearned this way:
they are left out of `selected.jsonl` and listed in the stage summary.
"""

from __future__ import annotations

from typing import Any

from meow.pipeline.records import ScoreRecord, SelectionRecord
from meow.pipeline.stage import Stage, StageContext
from meow.select.rules import select
from meow.telemetry import count


def selected_record(fact: ScoreRecord, rule: str, k: int, seed: int) -> SelectionRecord:
    positions = select(rule, fact.candidate_memos, k, seed, fact.index)
    return SelectionRecord(
        index=fact.index,
        question=fact.question,
        answer=fact.answer,
        selected=[fact.candidates[i] for i in positions],
        selected_candidates=positions,
        selected_memos=[fact.candidate_memos[i] for i in positions],
    )


class SelectStage(Stage):
    name = "select"
    reads = ("memo",)

    def config(self) -> dict[str, Any]:
        return {"select": self.spec.select.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        config = self.spec.select
        facts = ctx.run.read_records(ScoreRecord)
        records = [selected_record(f, config.rule, config.k, config.seed) for f in facts]
        kept = [r for r in records if r.selected]
        ctx.run.write_records(SelectionRecord, kept)
        unselected = [r.index for r in records if not r.selected]
        fewer = [r.index for r in kept if len(r.selected) < config.k]
        count("meow_select_facts_selected", len(kept), "Facts with inverted facts selected for unlearning")
        ctx.run.log("select_done", facts=len(kept), unselected=unselected, fewer_than_k=fewer)
        return {
            "rule": config.rule,
            "k": config.k,
            "facts": len(kept),
            "selected": sum(len(r.selected) for r in kept),
            "facts_without_candidates": unselected,
            "facts_with_fewer_than_k": fewer,
        }
