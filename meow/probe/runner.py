"""Run the attacks against every model on an endpoint and write the leakage report."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path

from meow.data import FieldMapping, QARecord, load_qa, load_tofu
from meow.data.tofu import SPLITS
from meow.probe.base import Attack, AttackSkipped, ProbeData, attack
from meow.probe.client import ProbeClient
from meow.probe.config import ProbeConfig
from meow.probe.export import write_metrics
from meow.probe.report import Outcome, verdict, write_report

log = logging.getLogger(__name__)

COUNTERFACTUAL = "counterfactual"


def load_forget(source: str, mapping: FieldMapping = FieldMapping(), fmt: str | None = None) -> list[QARecord]:
    """A TOFU split, from its `_perturbed` twin where there is one (same rows plus paraphrased
    questions), or any file the readers understand, with the spec's field mapping."""
    twin = f"{source}_perturbed"
    return load_tofu(twin) if twin in SPLITS else load_qa(source, mapping, fmt)


def records_sha256(records: list[QARecord]) -> str:
    """sha256 of the (question, answer) pairs in order, as JSON: names a forget set without its text."""
    pairs = [[r.question, r.answer] for r in records]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def counterfactuals(forget: list[QARecord], seed: int) -> list[QARecord]:
    """Each forget fact with its secret spans replaced by typed values of the same kind (structured
    inversion without a generator): same questions, same form, facts no model was trained on."""
    from meow.invert.structured import structured_invert

    out = structured_invert(forget, 1, seed, infill=None)
    return [
        QARecord(r.index, r.question, o["candidates"][0], {"counterfactual_of": r.index})
        for r, o in zip(forget, out)
        if o["candidates"]
    ]


def nonmembers(config: ProbeConfig, forget: list[QARecord]) -> tuple[list[QARecord], dict]:
    """The non-members membership inference compares the forget set with, and how the report names them."""
    source = config.holdout or ("holdout01" if config.forget in SPLITS else COUNTERFACTUAL)
    if source == COUNTERFACTUAL:
        records = counterfactuals(forget, config.seed)
        description = (
            "counterfactual facts: each probed forget fact with its secret spans replaced by structured "
            f"inversion (typed values, seed {config.seed}), never shown to a model"
        )
    else:
        records = load_qa(source, FieldMapping(config.question_field, config.answer_field), config.format)
        records = records[: config.limit]
        asked = {r.question for r in forget}
        if any(r.question in asked for r in records):
            log.warning("holdout %s shares questions with the forget set: they are not non-members", source)
        description = f"TOFU's `{source}`" if source in SPLITS else f"held-out facts `{source}`"
    return records, {"source": source, "description": description, "records": len(records)}


def run_probe(config: ProbeConfig, out: Path, weights: dict[str, str] | None = None) -> dict:
    """Every attack on every model; writes `<attack>.jsonl`, leakage.{json,md}, facts.jsonl, plots, metrics.prom.

    `weights` maps served names to local model specs, for the white-box (relearning) attack.
    Returns the content of leakage.json.
    """
    out.mkdir(parents=True, exist_ok=True)
    every = load_forget(config.forget, FieldMapping(config.question_field, config.answer_field), config.format)
    forget = every[: config.limit]
    holdout, described = nonmembers(config, forget)
    data = ProbeData(forget=forget, holdout=holdout, seed=config.seed, weights=dict(weights or {}))
    attacks = {name: attack(name, config.options.get(name)) for name in config.attacks}
    results = asyncio.run(_run_attacks(config, attacks, data, out))
    verdicts = {
        name: verdict(name, a, results[name], config.subject, config.references, config.seed)
        for name, a in attacks.items()
    }
    reference = next((v.reference for v in verdicts.values() if v.reference), None)
    probed = {
        "forget": {
            "source": config.forget,
            "question_field": config.question_field,
            "answer_field": config.answer_field,
            "format": config.format,
            "records": len(forget),
            "records_in_source": len(every),
            "sha256": records_sha256(forget),
        },
        "nonmembers": described,
        "reference": reference,
    }
    summary = write_report(out, config.models, attacks, results, verdicts, probed, forget)
    write_metrics(out / "metrics.prom", results, verdicts)
    return summary


async def _run_attacks(
    config: ProbeConfig, attacks: dict[str, Attack], data: ProbeData, out: Path
) -> dict[str, dict[str, Outcome]]:
    api_key = config.api_key.get_secret_value() if config.api_key else None
    client = ProbeClient(config.endpoint, api_key, config.concurrency, config.timeout_s)
    try:
        served = await client.served_models()
        missing = [m for m in config.models if m not in served]
        if missing:
            raise ValueError(f"{config.endpoint} does not serve {missing}; it serves {served}")
        results: dict[str, dict[str, Outcome]] = {}
        for name, a in attacks.items():
            # Each model has its own replicas, so models are probed side by side; an attack that
            # trains (relearning) takes the machine to itself, one model at a time.
            if a.models_in_parallel:
                outcomes = await asyncio.gather(*(_outcome(a, client, m, data) for m in config.models))
            else:
                outcomes = [await _outcome(a, client, m, data) for m in config.models]
            results[name] = dict(zip(config.models, outcomes))
            with open(out / f"{name}.jsonl", "w") as f:
                for model, outcome in results[name].items():
                    for row in outcome.rows:
                        f.write(json.dumps({"model": model, **row}) + "\n")
        return results
    finally:
        await client.close()


async def _outcome(attack: Attack, client: ProbeClient, model: str, data: ProbeData) -> Outcome:
    try:
        rows = await attack.run(client, model, data)
    except AttackSkipped as e:
        log.warning("%s on %s skipped: %s", attack.name, model, e)
        return Outcome(skipped=str(e))
    outcome = Outcome(rows, attack.aggregate(rows))
    log.info("%s on %s: %s", attack.name, model, outcome.aggregate)
    return outcome
