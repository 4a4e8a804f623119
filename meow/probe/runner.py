"""Run the attacks against every model on an endpoint and write the leakage report."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from meow.data import QARecord, load_qa, load_tofu
from meow.data.tofu import SPLITS
from meow.probe.attacks import Attack, AttackSkipped, ProbeData, attack
from meow.probe.client import ProbeClient
from meow.probe.config import ProbeConfig
from meow.probe.export import write_metrics
from meow.probe.report import Outcome, verdict, write_report

log = logging.getLogger(__name__)


def load_forget(source: str) -> list[QARecord]:
    """A TOFU split, from its `_perturbed` twin where there is one (same rows plus paraphrased
    questions), or any file the readers understand."""
    twin = f"{source}_perturbed"
    return load_tofu(twin) if twin in SPLITS else load_qa(source)


def run_probe(config: ProbeConfig, out: Path, weights: dict[str, str] | None = None) -> dict:
    """Every attack on every model; writes `<attack>.jsonl`, leakage.{json,md}, plots and metrics.prom.

    `weights` maps served names to local model specs, for the white-box (relearning) attack.
    Returns the content of leakage.json.
    """
    out.mkdir(parents=True, exist_ok=True)
    limit = config.limit
    data = ProbeData(
        forget=load_forget(config.forget)[:limit],
        holdout=load_qa(config.holdout)[:limit],
        seed=config.seed,
        weights=dict(weights or {}),
    )
    attacks = {name: attack(name, config.options.get(name)) for name in config.attacks}
    results = asyncio.run(_run_attacks(config, attacks, data, out))
    verdicts = {
        name: verdict(name, a, results[name], config.subject, config.references, config.seed)
        for name, a in attacks.items()
    }
    summary = write_report(out, config.models, attacks, results, verdicts)
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
