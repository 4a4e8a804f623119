"""Evaluate one model on the TOFU splits: score every answer, generate every answer, keep it all.

1. Tokenize every (question prompt, answer) pair of every split exactly as in training (`tofu.py`);
   identical pairs (real authors' base answer is the answer itself) are scored once.
2. Teacher-forced log-probs come from the engines' `score`, greedy generations from `generate`, all
   in one job of an engine pool (`config.actors` actors, one engine each, started once per model).
3. Per example, the summed log-prob and token count of every scored answer, the generation and the
   derived per-example metrics are kept (`per_example/<split>.jsonl`), so every metric below can be
   recomputed from those files without the model.
4. `evaluate_cached` keeps those records under MEOW_HOME keyed by the model's bytes, the examples,
   the settings that change results and the code that produces them: a rerun, or another run that
   evaluates the same prepared target and oracle (the methods benchmark), reuses them.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from meow import engines
from meow.engines import SamplingConfig
from meow.engines.pool import EnginePool, GenerateRequest, ScoreRequest
from meow.evaluate import leakage, metrics, tofu
from meow.evaluate.config import EvaluateConfig
from meow.evaluate.tofu import SPLIT_NAMES, EvalSplit, scored_pair
from meow.models import encoding, templates
from meow.models.cache import cached_directory, meow_home, read_manifest, sha256_file
from meow.pipeline.rundir import read_per_example, stable_hash, versions, write_per_example
from meow.telemetry import count

log = logging.getLogger(__name__)

Record = dict[str, Any]


@dataclasses.dataclass
class PlannedRequests:
    """The engine requests of one model's evaluation and, per split and example, its slots in them."""

    requests: list[GenerateRequest | ScoreRequest]
    plans: list[tuple[EvalSplit, list[dict[str, Any]]]]
    generation_slots: list[int]
    scored: int  # distinct (prompt, answer) pairs


def plan_requests(tokenizer, splits: Sequence[EvalSplit], config: EvaluateConfig) -> PlannedRequests:
    """One request list for the engines, example by example: each example's generation, then its scored
    answers. An example's requests share one prompt, so they land in one engine call and its prefix
    cache computes that prompt once; generations spread evenly over the calls."""
    requests: list[GenerateRequest | ScoreRequest] = []
    scored: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}

    def pair(question: str, answer: str) -> int:
        prompt, labels = scored_pair(tokenizer, question, answer, config.max_length)
        key = (tuple(prompt), tuple(labels))
        if key not in scored:
            scored[key] = len(requests)
            requests.append(ScoreRequest(prompt, labels))
        return scored[key]

    # What each example needs: its slots in the requests.
    plans: list[tuple[EvalSplit, list[dict[str, Any]]]] = []
    generation_slots = []
    for split in splits:
        plan = []
        for example in split.examples:
            # Generation starts where the answer would: after the same prompt tokens.
            prompt = scored_pair(tokenizer, example.question, example.answer, config.max_length)[0]
            new_tokens = config.max_new_tokens or config.max_length - len(prompt)
            generation_slots.append(len(requests))
            requests.append(GenerateRequest(prompt, SamplingConfig(max_new_tokens=new_tokens, temperature=0.0)))
            truth_ratio = split.has_truth_ratio
            plan.append(
                {
                    "generation": generation_slots[-1],
                    "answer": pair(example.question, example.answer),
                    "base": pair(example.question, example.base) if truth_ratio else None,
                    "perturbed": [pair(example.question, p) for p in example.perturbed] if truth_ratio else [],
                }
            )
        plans.append((split, plan))
    return PlannedRequests(requests, plans, generation_slots, len(scored))


def evaluate_model(
    model: str, splits: Sequence[EvalSplit], config: EvaluateConfig, label: str = "model"
) -> dict[str, list[Record]]:
    """Per-example records of `model` on each split, by split name."""
    from transformers import AutoTokenizer

    from meow.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
    planned = plan_requests(tokenizer, splits, config)
    requests, plans = planned.requests, planned.plans

    pool = EnginePool(
        model,
        config.engine,
        actors=config.actors,
        batch_size=config.batch_size,
        cpus_per_actor=config.cpus_per_actor,
        gpus_per_actor=config.gpus_per_actor,
        progress=f"evaluate {label}",
    )
    # One job per model: the engines start once.
    results = pool.run(requests)
    generations = [results[i] for i in planned.generation_slots]
    count("meow_evaluate_sequences_scored", planned.scored, "Answers scored by the TOFU evaluator", model=label)
    count(
        "meow_evaluate_tokens_generated",
        sum(len(g.token_ids) for g in generations),
        "Tokens generated by the TOFU evaluator",
        model=label,
    )

    out: dict[str, list[Record]] = {}
    for split, plan in plans:
        records = []
        for example, slots in zip(split.examples, plan):
            generation = results[slots["generation"]]
            record: Record = {
                "index": example.index,
                "question": example.question,
                "answer": example.answer,
                "generation": generation.text,
                "finish_reason": generation.finish_reason,
                "generated_tokens": len(generation.token_ids),
                # The question prompt, computed once per example (its scorings reuse it from the
                # prefix cache): with the answers' and generated tokens, the evaluation's work.
                "prompt_tokens": len(requests[slots["generation"]].prompt),
                **_scored("answer", results[slots["answer"]]),
            }
            if slots["base"] is not None:
                record.update(_scored("base", results[slots["base"]]))
                perturbed = [results[s] for s in slots["perturbed"]]
                record["perturbed_logprob"] = [float(sum(s)) for s in perturbed]
                record["perturbed_tokens"] = [len(s) for s in perturbed]
            records.append(example_metrics(record, split))
        out[split.name] = records
    return out


# Settings that decide where and how fast, not what comes out of one model's evaluation (the
# stage reads `frontier_dtype` and passes the dtype it picks as the engine's).
PLACEMENT_FIELDS = {
    **dict.fromkeys(
        ("actors", "cpus_per_actor", "gpus_per_actor", "batch_size", "cache", "oracle", "max_rows", "frontier_dtype"), True
    ),
    "engine": {"memory_per_actor"},
}


def evaluate_cached(
    model: str, splits: Sequence[EvalSplit], config: EvaluateConfig, label: str = "model"
) -> tuple[dict[str, list[Record]], bool]:
    """`evaluate_model` through the evaluation cache; also says whether the records came from it."""
    from meow.models import resolve_model

    directory = meow_home() / "evaluations" / evaluation_key(resolve_model(model), splits, config)
    hit = read_manifest(directory) is not None

    def build(tmp: Path) -> dict[str, Any]:
        write_per_example(tmp / "per_example", evaluate_model(model, splits, config, label))
        return {"label": label, "splits": {s.name: len(s.examples) for s in splits}}

    per_example = read_per_example(cached_directory(directory, build) / "per_example")
    by_name = {s.name: s for s in splits}
    # Derived metrics are recomputed from the saved sums: a metric fix never needs a fresh evaluation.
    return {name: [example_metrics(r, by_name[name]) for r in records] for name, records in per_example.items()}, hit


def source_fingerprint(path: Path) -> str:
    """Hash of a Python file's syntax tree: comments and formatting do not change what it computes,
    so editing them keeps the saved evaluations (a comment edit once cost a rerun 328 s)."""
    return hashlib.sha256(ast.dump(ast.parse(path.read_text())).encode()).hexdigest()


def evaluation_key(model_dir: Path, splits: Sequence[EvalSplit], config: EvaluateConfig) -> str:
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != "meow-manifest.json")
    # The code that turns examples into saved records: formatting, templates, engines, this module.
    code = [Path(__file__), Path(tofu.__file__), Path(encoding.__file__), Path(templates.__file__)]
    # actor.py only places an engine in a Ray actor for the tests: it computes nothing saved here.
    code += sorted(p for p in Path(engines.__file__).parent.glob("*.py") if p.name != "actor.py")
    return stable_hash(
        {
            "model": {str(p.relative_to(model_dir)): sha256_file(p) for p in files},
            "splits": [[s.name, [dataclasses.asdict(e) for e in s.examples]] for s in splits],
            "config": config.model_dump(mode="json", exclude=PLACEMENT_FIELDS),
            "code": [source_fingerprint(p) for p in code],
            "versions": versions(),
        }
    )


def _scored(name: str, logprobs: Sequence[float]) -> Record:
    return {f"{name}_logprob": float(sum(logprobs)), f"{name}_tokens": len(logprobs)}


def example_metrics(record: Record, split: EvalSplit) -> Record:
    """Add the per-example metrics derived from the saved log-prob sums and the generation."""
    answer = metrics.mean_loss(record["answer_logprob"], record["answer_tokens"])
    derived: Record = {"rouge_l_recall": metrics.rouge_l_recall(record["answer"], record["generation"])}
    if "base_logprob" in record:
        base = metrics.mean_loss(record["base_logprob"], record["base_tokens"])
        perturbed = [metrics.mean_loss(s, n) for s, n in zip(record["perturbed_logprob"], record["perturbed_tokens"])]
        derived["truth_ratio"] = metrics.truth_ratio(base, perturbed)
        # Options normalisation uses the same perturbed answers (real authors / world facts: base = answer).
        derived["probability"] = (
            metrics.probability_w_options(answer, perturbed)
            if split.probability_over_options
            else metrics.probability(answer)
        )
    else:
        derived["probability"] = metrics.probability(answer)
    if split.name == "forget" and "question" in record:
        # Secret-level leakage of the greedy generation (`meow.evaluate.leakage`, as `meow probe` counts it).
        derived.update(leakage.generation_leak(record["question"], record["answer"], record["generation"]))
    return {**record, **derived}


def split_metrics(name: str, records: Sequence[Record]) -> dict[str, float | int | None]:
    """Probability, ROUGE-L recall and truth ratio of one split (means over its examples)."""
    ratios = [r["truth_ratio"] for r in records if "truth_ratio" in r]
    aggregate = metrics.closer_to_1_better if name == "forget" else metrics.true_better
    return {
        "probability": float(np.mean([r["probability"] for r in records])),
        "rouge_l": float(np.mean([r["rouge_l_recall"] for r in records])),
        "truth_ratio": aggregate(ratios) if len(ratios) == len(records) else None,
        "n": len(records),
    }


def forget_ratios(per_example: Mapping[str, Sequence[Record]]) -> list[float] | None:
    records = per_example.get("forget") or []
    ratios = [r["truth_ratio"] for r in records if "truth_ratio" in r]
    return ratios if records and len(ratios) == len(records) else None


def model_metrics(per_example: Mapping[str, Sequence[Record]], oracle_forget: Sequence[float] | None) -> dict[str, Any]:
    """One model's summary: per-split metrics, model utility and, given the oracle's forget truth
    ratios, forget quality."""
    order = sorted(per_example, key=SPLIT_NAMES.index)
    splits = {name: split_metrics(name, per_example[name]) for name in order}
    utility_ready = all(s in splits and splits[s]["truth_ratio"] is not None for s in metrics.UTILITY_SPLITS)
    ratios = forget_ratios(per_example)
    forget = splits.get("forget", {})
    return {
        "forget_quality": metrics.ks_test(ratios, oracle_forget) if ratios and oracle_forget else None,
        "model_utility": metrics.model_utility(splits) if utility_ready else None,
        "forget_rouge_l": forget.get("rouge_l"),
        "forget_probability": forget.get("probability"),
        "forget_truth_ratio": forget.get("truth_ratio"),
        # Share of forget facts whose secret spans the greedy generation names, with a 95% interval.
        **(leakage.forget_secret_leak(per_example.get("forget") or []) or {"forget_secret_leak": None}),
        "splits": splits,
    }


