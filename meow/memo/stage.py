"""The `memo` stage (method spec 1.2): MEMO of every fact's original answer and inverted candidates.

All windows of all answers of all facts are one Ray Data job on an engine pool of the model being
unlearned (`ctx.model_to_unlearn()`), greedy. Windows with the same prompt are generated once: a
greedy generation depends on the prompt only, and candidates that keep the original's opening
words share their first windows with it (in prefix mode every window of a fact is shared). In the
`fast` variant a prompt is generated once up to the largest budget of its windows, and each window
scores the first tokens within its own budget (greedy, so that is what a shorter run would give).

Generations are appended to `generations.partial.jsonl` as they stream in: a killed run resumes
from there instead of generating again.

Writes `scores.jsonl`, one `ScoreRecord` per fact (`meow/pipeline/records.py`), fields chosen for
plotting original vs inverted: `index`, `question`, `answer`, `candidates`, `original_memo` (float),
`candidate_memos` (one float per candidate, in candidate order), and with `save_windows` the
per-window scores `original_windows` / `candidate_windows`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from meow.memo.config import MemoConfig
from meow.memo.metric import Window, fast_max_new_tokens, mean, rouge1_precision, scored_text, windows
from meow.pipeline.records import CandidateRecord, ScoreRecord
from meow.pipeline.rundir import stable_hash
from meow.pipeline.stage import Stage, StageContext
from meow.telemetry import count, observe

PARTIAL_FILE = "generations.partial.jsonl"

# MEMO is a ROUGE-1 precision in [0, 1]; tenths are enough to see the distribution move.
MEMO_BUCKETS = tuple(i / 10 for i in range(1, 10))


@dataclass(frozen=True)
class Generated:
    token_ids: list[int]
    finish_reason: str


class PartialGenerations:
    """Generations kept on disk while a job runs, valid only for the job (model, config, inputs) that made them."""

    def __init__(self, path: Path | None, job: str):
        self.path, self.job = path, job
        self.found: dict[tuple[str, int], Generated] = {}
        if path is None or not path.exists():
            return
        lines = path.read_text().splitlines()
        if not lines or json.loads(lines[0]).get("job") != job:
            return
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the line being written when the run was killed
                continue
            self.found[(row["prompt"], row["max_new_tokens"])] = Generated(row["token_ids"], row["finish_reason"])

    def writer(self) -> TextIO | None:
        """Open for appending (starting the file over when it belonged to another job)."""
        if self.path is None:
            return None
        fresh = not self.found
        # A run killed mid-line left a partial last line: start on a new line after it.
        torn = not fresh and not self.path.read_bytes().endswith(b"\n")
        f = open(self.path, "w" if fresh else "a")
        if fresh:
            f.write(json.dumps({"job": self.job}) + "\n")
        elif torn:
            f.write("\n")
        return f


def score_facts(
    facts: Sequence[CandidateRecord], model: str, config: MemoConfig, partial: PartialGenerations | None = None
) -> tuple[list[ScoreRecord], dict[str, Any]]:
    """MEMO records for `facts` and job statistics."""
    from transformers import AutoTokenizer

    from meow.engines import SamplingConfig
    from meow.engines.pool import EnginePool, GenerateRequest
    from meow.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
    partial = partial or PartialGenerations(None, "")
    # (fact position, answer position: 0 = original, i = candidate i-1, windows of that answer)
    answers = [
        (f, a, windows(fact.question, text, config.mode, config.stride))
        for f, fact in enumerate(facts)
        for a, text in enumerate([fact.answer, *fact.candidates])
    ]
    all_windows = [w for _, _, ws in answers for w in ws]
    budgets = _budgets(all_windows, tokenizer, config)
    # One generation per distinct prompt, long enough for every window that shares it.
    wanted: dict[str, int] = {}
    for w, budget in zip(all_windows, budgets):
        wanted[w.prompt] = max(wanted.get(w.prompt, 0), budget)
    done = {p: partial.found[(p, n)] for p, n in wanted.items() if (p, n) in partial.found}
    missing = [p for p in wanted if p not in done]

    started, tokens = time.time(), 0
    if missing:
        pool = EnginePool(
            model, config.engine, actors=config.actors, batch_size=config.batch_size,
            gpus_per_actor=config.gpus_per_actor, progress="memo",
        )  # fmt: skip
        requests = [GenerateRequest(p, SamplingConfig(max_new_tokens=wanted[p])) for p in missing]
        out = partial.writer()
        try:
            for i, generation in pool.stream(requests):
                done[missing[i]] = Generated(generation.token_ids, generation.finish_reason)
                tokens += len(generation.token_ids)
                if out is not None:
                    row = {"prompt": missing[i], "max_new_tokens": wanted[missing[i]], "token_ids": generation.token_ids}
                    out.write(json.dumps({**row, "finish_reason": generation.finish_reason}) + "\n")
                    out.flush()
        finally:
            if out is not None:
                out.close()
    seconds = time.time() - started
    count("meow_memo_tokens_generated", tokens, "Tokens generated by the MEMO stage")

    scores = iter(_window_scores(all_windows, budgets, done, tokenizer, config))
    per_answer: dict[tuple[int, int], list[float]] = {(f, a): [next(scores) for _ in ws] for f, a, ws in answers}
    records = []
    for f, fact in enumerate(facts):
        candidates = range(1, len(fact.candidates) + 1)
        records.append(
            ScoreRecord(
                index=fact.index, question=fact.question, answer=fact.answer, candidates=list(fact.candidates),
                mode=config.mode, variant=config.variant,
                original_memo=mean(per_answer[(f, 0)]),
                candidate_memos=[mean(per_answer[(f, a)]) for a in candidates],
                original_windows=per_answer[(f, 0)] if config.save_windows else None,
                candidate_windows=[per_answer[(f, a)] for a in candidates] if config.save_windows else None,
            )
        )  # fmt: skip
    count("meow_memo_windows_scored", len(all_windows), "MEMO windows scored")
    count("meow_memo_facts_scored", len(records), "Facts whose answers MEMO scored")
    for kind, memos in (
        ("original", [r.original_memo for r in records]),
        ("candidate", [m for r in records for m in r.candidate_memos]),
    ):
        observe("meow_memo_score_ratio", memos, "MEMO of each scored answer", MEMO_BUCKETS, answer=kind)
    stats = {
        "facts": len(records),
        "answers": len(answers),
        "windows": len(all_windows),
        "distinct_prompts": len(wanted),
        "generated_prompts": len(missing),
        "resumed_prompts": len(wanted) - len(missing),
        "tokens_generated": tokens,
        "generation_seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if tokens else None,
    }
    return records, stats


def _budgets(all_windows: list[Window], tokenizer, config: MemoConfig) -> list[int]:
    if config.variant == "exact":
        return [config.max_new_tokens] * len(all_windows)
    targets = tokenizer([w.target for w in all_windows], add_special_tokens=False).input_ids if all_windows else []
    return [
        fast_max_new_tokens(len(t), config.fast_token_factor, config.fast_token_margin, config.max_new_tokens)
        for t in targets
    ]


def _window_scores(
    all_windows: list[Window], budgets: list[int], done: dict[str, Generated], tokenizer, config: MemoConfig
) -> list[float]:
    from tqdm import tqdm

    prompt_ids = tokenizer([w.prompt for w in all_windows]).input_ids if all_windows else []
    scores = []
    for w, budget, ids in tqdm(zip(all_windows, budgets, prompt_ids), total=len(all_windows), desc="memo rouge", unit="win"):
        generated = done[w.prompt].token_ids[:budget]
        full = tokenizer.decode(ids + generated, skip_special_tokens=False) if config.decode == "reference" else ""
        text = scored_text(config.decode, w.prompt, full, tokenizer.decode(generated, skip_special_tokens=True))
        scores.append(rouge1_precision(w.target, text))
    return scores


class MemoStage(Stage):
    name = "memo"
    reads = ("prepare", "invert")

    def config(self) -> dict[str, Any]:
        spec = self.spec
        # With `prepare` the scored model is the prepared target (its manifest is an input already).
        return {"memo": spec.memo.model_dump(mode="json"), "model": spec.given_model()}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        facts = ctx.run.read_records(CandidateRecord)
        upstream = {r: (ctx.run.manifest(r) or {}).get("completion") for r in self.reads if r in self.spec.stages}
        partial = PartialGenerations(ctx.dir / PARTIAL_FILE, stable_hash({"config": self.config(), "upstream": upstream}))
        records, stats = score_facts(facts, ctx.model_to_unlearn(), self.spec.memo, partial)
        ctx.run.write_records(ScoreRecord, records)
        scored = [r for r in records if r.candidate_memos]
        summary = {
            **stats,
            "mean_original_memo": mean([r.original_memo for r in records]),
            "mean_candidate_memo": mean([m for r in records for m in r.candidate_memos]),
            "original_above_best_candidate": mean([float(r.original_memo > max(r.candidate_memos)) for r in scored]),
        }
        ctx.run.log("memo_done", **summary)
        return summary
