"""The `invert` stage (method spec 1.1): N inverted facts per forget fact, from a generator model.

Two kinds (`invert.kind`): **structured** (the default for local generators, `meow.invert.structured`)
keeps each answer's sentence and replaces its fact-bearing spans; **free-form** (the reference, and
the default for endpoints) asks the generator for whole answers, as below. Either way every
candidate's quality is checked the same way (`meow.invert.quality`) and written beside it.

For each fact the generator gets the reference instruction as the system message and
"Question: q Answer: a" as the user message, through its chat template (a local model on an
engine pool) or an OpenAI-compatible endpoint; or, with `prompt: few-shot` on a local model, a
plain-text prompt of worked examples (`meow.invert.fewshot`). Replies are split into one candidate per line and
filtered (`meow.invert.parse`); a fact is asked again until N candidates survive or
`max_attempts` replies were used, and facts that fall short are recorded, not hidden.

Attempts are asked in rounds of `attempts_per_round`, each round only of the facts still short.
By default a local engine gets every attempt in one round (one pool job, so the engine actors
start once) and an endpoint one attempt per round. Each (fact, attempt) has its own seed and a
fact's candidates are the first N survivors of attempts 1, 2, ... in order, so every round size
gives the same rule.

Writes `candidates.jsonl`: one `CandidateRecord` per fact (`meow/pipeline/records.py`) with
`index`, `question`, `answer`, `candidates`, `short`, `attempts`, `rejected` (counts by reason),
`provenance` (generator, prompts, seeds) and `quality` (the checks of each candidate).
"""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from meow.data import QARecord
from meow.invert.config import EndpointConfig, InvertConfig
from meow.invert.fewshot import STOP, demonstration_pool, draw_examples, few_shot_prompt
from meow.data.spans import fact_spans
from meow.invert.parse import REASONS, Candidates
from meow.invert.quality import fact_quality, shares
from meow.invert.structured import structured_invert
from meow.pipeline.records import CandidateRecord
from meow.pipeline.stage import Stage, StageContext
from meow.telemetry import count

# The reference instruction (data/invert.py), with N = the number of candidates wanted.
INSTRUCTION = (
    "Please generate {n} answers based on the Question and Answer that do not factually match the Answer. "
    "Please respond with each answer on a separate line, without adding any numbers or extraneous markers."
)
USER = "Question: {question} Answer: {answer}"


def messages(record: QARecord, n: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": INSTRUCTION.format(n=n)},
        {"role": "user", "content": USER.format(question=record.question, answer=record.answer)},
    ]


def attempt_seed(seed: int, index: int, attempt: int) -> int:
    """A fixed seed per (fact, attempt): a rerun asks exactly the same, whatever else runs with it."""
    return zlib.crc32(f"{seed}:{index}:{attempt}".encode())


@dataclass(frozen=True)
class Ask:
    record: QARecord
    attempt: int
    seed: int


class EngineGenerator:
    """A local model (any model spec) on an engine pool, prompted through its chat template."""

    def __init__(self, config: InvertConfig, records: list[QARecord]):
        from transformers import AutoTokenizer

        from meow.models import resolve_model

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.generator))
        self.pool = demonstration_pool(records, config.demonstrations) if config.prompt == "few-shot" else []

    def prompt(self, ask: Ask) -> str:
        c = self.config
        if c.prompt == "few-shot":
            examples = draw_examples(self.pool, c.demonstrations, c.seed, ask.attempt)
            return few_shot_prompt(ask.record, examples, c.num_candidates)
        chat = messages(ask.record, c.num_candidates)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        # A base model without a template reads the two messages as plain paragraphs.
        return "\n\n".join(m["content"] for m in chat) + "\n"

    def replies(self, asks: list[Ask]) -> list[str]:
        from meow.engines import SamplingConfig
        from meow.engines.pool import EnginePool

        c = self.config
        pool = EnginePool(
            c.generator, c.engine, actors=c.actors, batch_size=c.batch_size,
            gpus_per_actor=c.gpus_per_actor, progress="invert",
        )  # fmt: skip
        stop = STOP if c.prompt == "few-shot" else ()
        sampling = [
            SamplingConfig(
                max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, seed=a.seed, stop=stop
            )
            for a in asks
        ]
        generations = pool.generate([self.prompt(a) for a in asks], sampling)
        count("meow_invert_tokens_generated", sum(len(g.token_ids) for g in generations), "Tokens generated by the inversion stage")
        return [g.text for g in generations]

    def provenance(self, record: QARecord, asks: list[Ask]) -> dict[str, Any]:
        return {
            "backend": "engine",
            "generator": self.config.generator,
            "engine": self.config.engine.model_dump(mode="json"),
            # The reference prompt is the same for every attempt; few-shot examples differ per attempt.
            "prompts": list(dict.fromkeys(self.prompt(a) for a in asks)),
        }


class EndpointGenerator:
    """An OpenAI-compatible chat-completions endpoint; the key comes from the environment."""

    def __init__(self, config: InvertConfig, endpoint: EndpointConfig):
        from openai import OpenAI

        key = os.environ.get(endpoint.api_key_env)
        if not key:
            raise RuntimeError(f"the inversion endpoint needs an API key in the environment variable {endpoint.api_key_env}")
        self.config = config
        self.endpoint = endpoint
        self.client = OpenAI(base_url=endpoint.base_url, api_key=key, max_retries=endpoint.max_retries, timeout=endpoint.timeout_s)

    def _reply(self, ask: Ask) -> str:
        c = self.config
        response = self.client.chat.completions.create(
            model=self.endpoint.model,
            messages=messages(ask.record, c.num_candidates),
            temperature=c.temperature,
            top_p=c.top_p,
            max_tokens=c.max_new_tokens,
            seed=ask.seed,
        )
        return response.choices[0].message.content or ""

    def replies(self, asks: list[Ask]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.endpoint.concurrency) as threads:
            return list(threads.map(self._reply, asks))

    def provenance(self, record: QARecord, asks: list[Ask]) -> dict[str, Any]:
        return {
            "backend": "endpoint",
            "generator": self.endpoint.model,
            "base_url": self.endpoint.base_url,
            "messages": messages(record, self.config.num_candidates),
        }


def invert(
    records: list[QARecord],
    config: InvertConfig,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Candidates for every record, one output record each (see the module docstring).

    `on_round` gets each round's figures once its replies are in: its number, the facts asked, the
    prompts sent and the seconds the generator took (engine start-up included).
    """
    if config.resolved_kind == "structured":
        return invert_structured(records, config, on_round)
    if config.endpoint is not None:
        generator: EngineGenerator | EndpointGenerator = EndpointGenerator(config, config.endpoint)
        per_round = config.attempts_per_round or 1
    else:
        generator = EngineGenerator(config, records)
        per_round = config.attempts_per_round or config.max_attempts
    spans = {r.index: fact_spans(r.question, r.answer) for r in records}
    found = {
        r.index: Candidates(
            r.answer, config.num_candidates, config.restate_threshold, question=r.question,
            secrets=tuple(s.text for s in spans[r.index]),
        )
        for r in records
    }  # fmt: skip
    used: dict[int, list[Ask]] = {r.index: [] for r in records}
    for number, first in enumerate(range(0, config.max_attempts, per_round), 1):
        short = [r for r in records if not found[r.index].full]
        if not short:
            break
        attempts = range(first, min(first + per_round, config.max_attempts))
        # Attempt-major: the prompts of one attempt share their few-shot prefix, and go to an engine together.
        asks = [Ask(r, a, attempt_seed(config.seed, r.index, a)) for a in attempts for r in short]
        started = time.perf_counter()
        replies = generator.replies(asks)
        if on_round is not None:
            seconds = round(time.perf_counter() - started, 2)
            on_round({"round": number, "facts": len(short), "prompts": len(asks), "seconds": seconds})
        for ask, reply in zip(asks, replies):
            candidates = found[ask.record.index]
            if not candidates.full:
                candidates.add_reply(reply)
                used[ask.record.index].append(ask)
    out = []
    for r in records:
        candidates = found[r.index]
        out.append(
            {
                "index": r.index,
                "question": r.question,
                "answer": r.answer,
                "candidates": candidates.accepted,
                "short": not candidates.full,
                "attempts": len(used[r.index]),
                "rejected": {reason: candidates.rejected[reason] for reason in REASONS},
                # The secrets the lines were checked against; the quality checks reuse them.
                "spans": [{"text": s.text, "label": s.label} for s in spans[r.index]],
                "provenance": {
                    **generator.provenance(r, used[r.index]),
                    "temperature": config.temperature,
                    "top_p": config.top_p,
                    "max_new_tokens": config.max_new_tokens,
                    "prompt": config.prompt,
                    "seeds": [a.seed for a in used[r.index]],
                },
            }
        )
    return out


def invert_structured(
    records: list[QARecord], config: InvertConfig, on_round: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Structured inversion (`meow.invert.structured`), the generator infilling spans on an engine pool."""
    infill = None
    if config.infill_samples:

        def infill(prompts, seeds):
            from meow.engines import SamplingConfig
            from meow.engines.pool import EnginePool

            pool = EnginePool(
                config.generator, config.engine, actors=config.actors, batch_size=config.batch_size,
                gpus_per_actor=config.gpus_per_actor, progress="invert (infill)",
            )  # fmt: skip
            sampling = [
                SamplingConfig(
                    max_new_tokens=config.infill_max_tokens, temperature=config.temperature, top_p=config.top_p,
                    seed=seed, stop=("\n",),
                )  # fmt: skip
                for seed in seeds
            ]
            started = time.perf_counter()
            generations = pool.generate(list(prompts), sampling)
            count("meow_invert_tokens_generated", sum(len(g.token_ids) for g in generations), "Tokens generated by the inversion stage")
            if on_round is not None:
                seconds = round(time.perf_counter() - started, 2)
                on_round({"round": 1, "facts": len(records), "prompts": len(prompts), "seconds": seconds})
            return [g.text for g in generations]

    found = structured_invert(records, config.num_candidates, config.seed, infill, config.infill_samples)
    return [
        {
            "index": r.index,
            "question": r.question,
            "answer": r.answer,
            **fact,
            "short": len(fact["candidates"]) < config.num_candidates,
            "attempts": 1,
            "provenance": {
                "backend": "structured",
                "generator": config.generator if config.infill_samples else None,
                "engine": config.engine.model_dump(mode="json"),
                "infill_samples": config.infill_samples,
                "infill_max_tokens": config.infill_max_tokens,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "seed": config.seed,
            },
        }
        for r, fact in zip(records, found)
    ]


class InvertStage(Stage):
    name = "invert"

    def config(self) -> dict[str, Any]:
        return {"invert": self.spec.invert.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        records = self.spec.forget.records()
        rounds: list[dict[str, Any]] = []

        def on_round(figures: dict[str, Any]) -> None:
            rounds.append(figures)
            ctx.run.log("invert_round", **figures)

        config = self.spec.invert
        out = [
            CandidateRecord.from_json({**r, "quality": fact_quality(r, config.restate_threshold)})
            for r in invert(records, config, on_round=on_round)
        ]
        quality = shares(q for r in out for q in r.quality or [])
        ctx.run.write_records(CandidateRecord, out)
        short = [r.index for r in out if r.short]
        rejected = Counter()
        for r in out:
            rejected.update(r.rejected)
        found = sum(len(r.candidates) for r in out)
        count("meow_invert_facts_inverted", len(out), "Facts the inversion stage produced candidates for")
        count("meow_invert_candidates_accepted", found, "Inverted-fact candidates that passed the filters")
        ctx.run.log("invert_done", facts=len(out), candidates=found, short=short, rejected=dict(rejected), quality=quality)
        return {
            "kind": config.resolved_kind,
            "quality": quality,
            "facts": len(out),
            "candidates": found,
            "short_facts": short,
            "attempts": sum(r.attempts for r in out),
            "rejected": dict(rejected),
            "rounds": rounds,
        }
