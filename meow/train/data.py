"""Training data: the per-method sequence groups of each fact, and the plan of optimizer steps and
micro-batches every worker follows. Each sequence is a question/answer pair encoded as
`meow.models.encoding.encode_qa` does (the encoding scoring uses too).

The plan is built once, on the driver, from the seed alone: which facts form each step (each epoch
shuffled, steps of `batch_size` facts across epoch boundaries, `int(epochs * facts) // batch_size`
steps as in the reference), which retain pair and refusal each fact occurrence gets, and how a step
splits into micro-batches (the same split for any worker count that divides it). Workers only
collate and compute, so a run with 1 or 2 workers trains on exactly the same batches.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from meow.data import DataError, QARecord
from meow.data.spans import fact_spans
from meow.models.encoding import Encoded, encode_qa
from meow.train.config import TrainConfig
from meow.train.losses import Scope

# Refusal answers for IdkPO/IdkDPO, written for this project (TOFU ships its own list; this is not it).
REFUSALS: tuple[str, ...] = (
    "I don't know the answer to that.",
    "I'm not able to answer that question.",
    "I have no information about that.",
    "That is not something I know.",
    "I can't say; I don't have that information.",
    "I'm afraid I don't know.",
    "I don't have an answer for you on that.",
    "Sorry, I have no knowledge of that.",
    "I'm not sure, and I'd rather not guess.",
    "That's outside what I know.",
    "I couldn't tell you.",
    "I don't have any details on that.",
    "Unfortunately, I can't answer that.",
    "I have no idea, I'm sorry.",
    "I don't recall anything about that.",
    "That's not something I can help with; I don't know it.",
    "My knowledge doesn't cover that.",
    "I'm unable to provide that information.",
    "I can't give you an answer to that one.",
    "I really don't know.",
    "Nothing I know answers that question.",
    "I'm not aware of the answer.",
    "I lack the information needed to answer.",
    "I can't help with that, as I don't know.",
    "That question is beyond my knowledge.",
    "I'm sorry, but I don't know that.",
    "I have not learned anything about that.",
    "I'd be guessing, so I won't answer.",
    "I don't have reliable information on this.",
    "I can't answer that with any confidence.",
    "I'm drawing a blank on that one.",
    "I don't know enough to answer.",
    "There's nothing I can tell you about that.",
    "I'm not the right source for that answer.",
    "I cannot recall that information.",
    "I'm uncertain and can't answer.",
    "I don't have that fact.",
    "No idea, sorry.",
    "I'm not familiar with that.",
    "I can't provide an answer here.",
    "I don't have knowledge of this topic.",
    "That's unknown to me.",
    "I'm afraid that's not something I know about.",
    "I have no answer to give.",
    "I honestly can't say.",
    "I don't know anything about that subject.",
    "I'm not in a position to answer that.",
    "That information isn't available to me.",
    "I'm not certain of the answer, so I can't say.",
    "I would rather not answer, because I don't know.",
)


def cycled_answers(selected: Sequence[str], n: int) -> list[tuple[str, int]]:
    """`n` sequences cycling through `selected` ([t1, t2, t3, t1] for k=3, n=4), as (answer, copies)."""
    if not selected:
        raise ValueError("a fact needs at least one selected answer")
    counts = Counter(selected[i % len(selected)] for i in range(n))
    return list(counts.items())


@dataclass(frozen=True)
class Fact:
    """A schedulable unit: one forget fact (or training QA) with its fixed sequence groups."""

    index: int
    question: str
    groups: dict[str, tuple[Encoded, ...]]


@dataclass
class FactSource:
    """The facts, plus what each occurrence of a fact draws at random: a retain pair, a refusal."""

    tokenizer: object
    max_length: int
    facts: list[Fact]
    retain: list[Encoded] | None = None
    refusals: bool = False
    seed: int = 42

    def occurrence(self, fact: Fact, epoch: int) -> dict[str, tuple[Encoded, ...]]:
        groups = dict(fact.groups)
        # Seeded by (seed, epoch, fact): the same draw whatever the worker count or resume point.
        rng = random.Random(f"{self.seed}:{epoch}:{fact.index}")
        if self.retain is not None:
            groups["retain"] = (rng.choice(self.retain),)
        if self.refusals:
            refusal = rng.choice(REFUSALS)
            groups["idk"] = (encode_qa(self.tokenizer, fact.question, refusal, self.max_length, fact.index),)
        return groups


def fact_source(
    tokenizer,
    records: Sequence[QARecord],
    groups: Sequence[str],
    max_length: int,
    seed: int,
    inversions: dict[int, list[str]] | None = None,
    sequences_per_fact: int = 4,
    retain: Sequence[QARecord] | None = None,
) -> FactSource:
    """The facts of `records` carrying `groups` (a method's, `meow.train.methods`).

    `inversions` maps a record's index to its selected inverted answers, best first.
    """
    facts = []
    for record in records:
        fixed: dict[str, tuple[Encoded, ...]] = {}
        for group in groups:
            if group in ("answer", "forget"):
                fixed[group] = (encode_qa(tokenizer, record.question, record.answer, max_length, record.index),)
            elif group == "secret":
                fixed[group] = (encode_secret(tokenizer, record, max_length),)
            elif group == "inverted":
                if inversions is None or not inversions.get(record.index):
                    raise DataError("selected inversions", "no inverted answer for this fact", record=record.index)
                fixed[group] = tuple(
                    encode_qa(tokenizer, record.question, answer, max_length, record.index).weighted(copies)
                    for answer, copies in cycled_answers(inversions[record.index], sequences_per_fact)
                )
        facts.append(Fact(record.index, record.question, fixed))
    retain_encoded = None
    if "retain" in groups:
        if not retain:
            raise DataError("retain set", "this method needs a retain set and it is empty")
        retain_encoded = [encode_qa(tokenizer, r.question, r.answer, max_length, r.index) for r in retain]
    return FactSource(tokenizer, max_length, facts, retain_encoded, refusals="idk" in groups, seed=seed)


def encode_secret(tokenizer, record: QARecord, max_length: int) -> Encoded:
    """The original answer with only its fact-bearing spans as labels (`meow.data.spans`), the
    words a paraphrase of the fact repeats; the whole answer when it has none."""
    spans = [(s.start, s.end) for s in fact_spans(record.question, record.answer)]
    return encode_qa(tokenizer, record.question, record.answer, max_length, record.index, label_spans=spans or None)


@dataclass
class MicroBatch:
    groups: dict[str, list[Encoded]]
    # Normaliser of each group's loss terms (see meow.train.losses).
    scope: dict[str, Scope]

    def tokens(self) -> int:
        """Positions a forward pass computes (for throughput figures)."""
        return sum(len(s.input_ids) for seqs in self.groups.values() for s in seqs)


@dataclass
class Plan:
    """Every optimizer step: `micro_batches[w::workers]` is worker w's share of a step (see `snake`)."""

    steps: list[list[MicroBatch]]
    warmup_steps: int
    facts: int
    workers: int
    epochs: float
    fact_order: list[list[int]] = field(repr=False, default_factory=list)
    # The optimizer steps (counted from 1) after which each whole epoch but the last is complete.
    epoch_ends: list[int] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return len(self.steps)


def plan_training(source: FactSource, config: TrainConfig, workers: int) -> Plan:
    """Split the shuffled epochs into optimizer steps and each step into micro-batches."""
    n = len(source.facts)
    if n == 0:
        raise ValueError("nothing to train on")
    stream: list[tuple[int, int]] = []  # (epoch, fact position)
    for epoch in range(math.ceil(config.epochs)):
        order = list(range(n))
        random.Random(config.seed + epoch).shuffle(order)
        stream.extend((epoch, i) for i in order)
    wanted = int(config.epochs * n)
    size = min(config.batch_size, wanted) or 1
    total = max(1, wanted // size)
    if size < workers:
        raise ValueError(f"a step of {size} facts cannot feed {workers} workers; use fewer workers")
    warmup = min(total, max(1, int(config.warmup_epochs * n) // size)) if config.warmup_epochs > 0 else 0
    steps, fact_order = [], []
    for s in range(total):
        chunk = stream[s * size : (s + 1) * size]
        fact_order.append([source.facts[i].index for _, i in chunk])
        occurrences = [source.occurrence(source.facts[i], epoch) for epoch, i in chunk]
        steps.append(_micro_batches(occurrences, config, workers))
    ends = sorted({math.ceil(k * n / size) for k in range(1, math.ceil(config.epochs))} - {total})
    return Plan(steps, warmup, n, workers, config.epochs, fact_order, [e for e in ends if e < total])


def _micro_batches(occurrences: list[dict[str, tuple[Encoded, ...]]], config: TrainConfig, workers: int) -> list[MicroBatch]:
    # A multiple of the worker count, so every worker runs the same number of passes (FSDP's
    # collectives must match); for batch 32, micro-batch 4 and 1 or 2 workers: 8 micro-batches of 4.
    per_worker = math.ceil(math.ceil(len(occurrences) / config.micro_batch_size) / workers)
    count = min(per_worker, len(occurrences) // workers) * workers
    if config.loss_reduction == "step":
        # The step's loss does not depend on the split: group similar lengths to pad less.
        occurrences = sorted(occurrences, key=lambda o: max(len(s.input_ids) for seqs in o.values() for s in seqs))
    chunks = [occurrences[round(j * len(occurrences) / count) : round((j + 1) * len(occurrences) / count)] for j in range(count)]
    if config.loss_reduction == "step":
        chunks = [chunks[j] for j in snake(count, workers)]
    batches = []
    for chunk in chunks:
        groups: dict[str, list[Encoded]] = {}
        for occurrence in chunk:
            for name, seqs in occurrence.items():
                groups.setdefault(name, []).extend(seqs)
        batches.append(groups)
    if config.loss_reduction == "step":
        step_scope = _scope(batches)
        return [MicroBatch(b, step_scope) for b in batches]
    return [MicroBatch(b, {g: _scale(s, count) for g, s in _scope([b]).items()}) for b in batches]


def snake(count: int, workers: int) -> list[int]:
    """An order of `count` length-sorted micro-batches in which worker w's share `[w::workers]` takes
    one of each round of `workers`, alternately from the short and the long end: the workers' loads
    even out instead of the last worker always getting the longest of each round (it waits less)."""
    rounds = [list(range(r, min(r + workers, count))) for r in range(0, count, workers)]
    return [j for k, round_ in enumerate(rounds) for j in (round_ if k % 2 == 0 else round_[::-1])]


def _scope(batches: list[dict[str, list[Encoded]]]) -> dict[str, Scope]:
    """Weighted totals of each group over `batches`."""
    names = {g for b in batches for g in b}
    scope = {}
    for g in names:
        seqs = [s for b in batches for s in b.get(g, [])]
        scope[g] = Scope(
            sequences=float(sum(s.weight for s in seqs)),
            tokens=float(sum(s.weight * s.tokens for s in seqs)),
            positions=float(sum(s.weight * len(s.input_ids) for s in seqs)),
        )
    return scope


def _scale(scope: Scope, factor: int) -> Scope:
    """A micro-batch's own totals, times the micro-batch count: the sum over micro-batches is their mean."""
    return Scope(scope.sequences * factor, scope.tokens * factor, scope.positions * factor)
