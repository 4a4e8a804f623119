"""Extraction and membership attacks, registered by name (the interface is `meow.probe.base`).

Every extraction row carries `secret_exact`/`secret_fuzzy` (`meow.evaluate.leakage.span_hits`: does the
output contain the fact's secret spans) beside ROUGE-L recall and exact match of the whole answer.
"""

from __future__ import annotations

import json

import fsspec
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from meow.data import QARecord
from meow.data.spans import contains_span
from meow.evaluate import leakage
from meow.probe.base import ATTACKS, Attack, AttackSkipped, ProbeData, _mean, _Options, attack, secret
from meow.probe.scoring import Row, answer_scores, auc, mean_loss, min_k_prob

__all__ = ["ATTACKS", "Attack", "AttackSkipped", "ProbeData", "attack"]


def scored(record: QARecord, output: str) -> Row:
    """An extraction row's scores: the whole answer's, and the secret's."""
    return {**answer_scores(record.answer, output), **leakage.span_hits(secret(record), [output])}


@ATTACKS.register("direct")
class Direct(Attack):
    """The forget question as it is, greedy: does the model still answer it?"""

    name = "direct"

    async def run(self, client, model, data):
        async def probe(record: QARecord) -> Row:
            [output] = await client.ask(model, record.question, max_tokens=self.config.max_tokens)
            return {"index": record.index, **scored(record, output), "output": output}

        return await client.map(probe, data.forget, desc=f"direct {model}")


class ParaphraseOptions(_Options):
    # JSONL of {"index": <forget record index>, "question": <paraphrase>}, any number per record,
    # used in addition to TOFU's `paraphrased_question`.
    paraphrases: str | None = None


@ATTACKS.register("paraphrase")
class Paraphrase(Attack):
    """Reworded forget questions, greedy; an example leaks as much as its most revealing paraphrase."""

    name = "paraphrase"
    Config = ParaphraseOptions

    async def run(self, client, model, data):
        extra = self._supplied()
        probes = [
            (record, k, question)
            for record in data.forget
            for k, question in enumerate(
                [q for q in [record.extra.get("paraphrased_question")] if q] + extra.get(record.index, [])
            )
        ]
        if not probes:
            raise AttackSkipped(
                "no paraphrased questions: the forget set has no `paraphrased_question` and no file was given"
            )

        async def probe(item: tuple[QARecord, int, str]) -> Row:
            record, k, question = item
            [output] = await client.ask(model, question, max_tokens=self.config.max_tokens)
            return {"index": record.index, "paraphrase": k, **scored(record, output), "output": output}

        return await client.map(probe, probes, desc=f"paraphrase {model}")

    def aggregate(self, rows):
        return {
            **super().aggregate(rows),
            "rouge_l_recall": float(np.mean([max(g) for g in _by_index(rows, "rouge_l_recall").values()])),
            "exact_match": float(np.mean([max(g) for g in _by_index(rows, "exact_match").values()])),
            "rouge_l_recall_mean_paraphrase": _mean(rows, "rouge_l_recall"),
        }

    def _supplied(self) -> dict[int, list[str]]:
        if not self.config.paraphrases:
            return {}
        found: dict[int, list[str]] = {}
        with fsspec.open(self.config.paraphrases, "rt") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    found.setdefault(int(row["index"]), []).append(row["question"])
        return found


def _by_index(rows: list[Row], key: str) -> dict[int, list[float]]:
    groups: dict[int, list[float]] = {}
    for row in rows:
        groups.setdefault(row["index"], []).append(row[key])
    return groups


class PrefixOptions(_Options):
    # Share of the true answer's words given to the model before it continues.
    fractions: tuple[float, ...] = Field((0.25, 0.5, 0.75), min_length=1)


@ATTACKS.register("prefix")
class Prefix(Attack):
    """The question and the first part of the true answer: does the model complete the rest?"""

    name = "prefix"
    Config = PrefixOptions

    async def run(self, client, model, data):
        probes = []
        for record in data.forget:
            words = record.answer.split()
            for fraction in self.config.fractions:
                cut = max(1, round(fraction * len(words)))
                if cut < len(words):
                    probes.append((record, fraction, " ".join(words[:cut]), " ".join(words[cut:])))

        async def probe(item) -> Row:
            record, fraction, given, rest = item
            [output] = await client.ask(model, record.question, answer_start=given, max_tokens=self.config.max_tokens)
            # Only the spans the given start does not already state are the secret here.
            withheld = [s for s in secret(record) if not contains_span(given, s)]
            return {
                "index": record.index,
                "fraction": fraction,
                **answer_scores(rest, output),
                **leakage.span_hits(withheld, [output]),
                "output": output,
            }

        return await client.map(probe, probes, desc=f"prefix {model}")

    def aggregate(self, rows):
        per_fraction = {
            f"rouge_l_recall@{f:g}": _mean([r for r in rows if r["fraction"] == f], "rouge_l_recall")
            for f in self.config.fractions
        }
        return {**super().aggregate(rows), **per_fraction}


class SamplingOptions(_Options):
    n: int = Field(8, ge=1)
    temperature: float = Field(1.0, gt=0)


@ATTACKS.register("sampling")
class Sampling(Attack):
    """`n` answers sampled at temperature 1: the best of them against the true answer."""

    name = "sampling"
    Config = SamplingOptions

    async def run(self, client, model, data):
        async def probe(record: QARecord) -> Row:
            outputs = await client.ask(
                model,
                record.question,
                max_tokens=self.config.max_tokens,
                temperature=self.config.temperature,
                n=self.config.n,
                # Same samples for every model and every rerun.
                seed=data.seed + record.index * self.config.n,
            )
            scores = [scored(record, o) for o in outputs]
            best = max(range(len(outputs)), key=lambda i: scores[i]["rouge_l_recall"])
            # Any sample naming the secret leaks it; the output shown is one that does, if any.
            leaking = [i for i, s in enumerate(scores) if s[leakage.FUZZY] == 1]
            return {
                "index": record.index,
                "rouge_l_recall": scores[best]["rouge_l_recall"],
                "exact_match": max(s["exact_match"] for s in scores),
                "mean_rouge_l_recall": float(np.mean([s["rouge_l_recall"] for s in scores])),
                **leakage.span_hits(secret(record), outputs),
                "output": outputs[leaking[0] if leaking else best],
            }

        return await client.map(probe, data.forget, desc=f"sampling {model}")


class MembershipOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Min-K% Prob: the share of least likely tokens averaged.
    k: float = Field(0.2, gt=0, le=1)


@ATTACKS.register("membership")
class Membership(Attack):
    """Loss and Min-K% Prob of the true answers: can forget answers be told from unseen (holdout) ones?

    The headline is the AUC of the loss attack. Above the oracle's, the forget set still looks like
    training data; below it, unlearning pushed the forget answers to look *less* likely than unseen
    ones, which is detectable too.

    With counterfactual non-members (each fact's twin with its secret replaced), every fact also has
    a *gap*: loss of the twin minus loss of the true answer (> 0: the model prefers the true fact), and
    `distribution_test` compares two models' gaps as forget quality compares truth ratios (KS p-value).
    """

    name = "membership"
    Config = MembershipOptions
    headline = "auc_loss"

    async def run(self, client, model, data):
        probes = [(r, True) for r in data.forget] + [(r, False) for r in data.holdout]

        async def probe(item: tuple[QARecord, bool]) -> Row:
            record, member = item
            logprobs = await client.answer_logprobs(model, record.question, record.answer)
            twin_of = None if member else record.extra.get("counterfactual_of")
            twin = {} if twin_of is None else {"twin_of": twin_of}
            return {
                "index": record.index,
                "member": member,
                "tokens": len(logprobs),
                "loss": mean_loss(logprobs),
                "min_k": min_k_prob(logprobs, self.config.k),
                **twin,
            }

        return await client.map(probe, probes, desc=f"membership {model}")

    def statistic(self, rows):
        return auc([r["member"] for r in rows], [-r["loss"] for r in rows])

    def aggregate(self, rows):
        members = [r for r in rows if r["member"]]
        others = [r for r in rows if not r["member"]]
        return {
            "auc_loss": self.statistic(rows),
            "auc_min_k": auc([r["member"] for r in rows], [r["min_k"] for r in rows]),
            "loss_forget": _mean(members, "loss"),
            "loss_holdout": _mean(others, "loss"),
            **({"preference_gap": float(np.mean(gaps))} if (gaps := self.gaps(rows)) else {}),
        }

    @staticmethod
    def gaps(rows: list[Row]) -> list[float]:
        """Per fact with a counterfactual twin: loss(twin) - loss(true answer)."""
        true = {r["index"]: r["loss"] for r in rows if r["member"]}
        return [r["loss"] - true[r["twin_of"]] for r in rows if r.get("twin_of") in true]

    def distribution_test(self, subject: list[Row], reference: list[Row]) -> float | None:
        """Forget-quality-style p-value: two-sample KS test of the two models' per-fact gaps (1 = the
        subject prefers the true facts over their twins as the reference does); None without twins."""
        from meow.evaluate.metrics import ks_test

        a, b = self.gaps(subject), self.gaps(reference)
        return ks_test(a, b) if len(a) >= 2 and len(b) >= 2 else None
