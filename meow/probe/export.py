"""Probe results as Prometheus metrics, in a textfile.

A probe is a batch job: it ends, so there is nothing to scrape once it is done. The standard
answer is the text exposition format in a file that a long-running exporter serves: point
node_exporter's textfile collector (`--collector.textfile.directory`) at the probe directory,
or copy `metrics.prom` where one already looks. Each run replaces the file atomically.
Series: `meow_probe_score{attack,model,metric}`, `meow_probe_verdict{attack,subject,reference}`
(+1 leaks more than the reference, 0 the same, -1 less), `meow_probe_examples{attack,model}`
and `meow_probe_last_run_timestamp_seconds`. Labels carry names only, never record text.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from meow.probe.report import Outcome, Verdict

SIGN = {"more": 1, "same": 0, "less": -1}


def write_metrics(path: Path, results: dict[str, dict[str, Outcome]], verdicts: dict[str, Verdict]) -> None:
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    score = Gauge(
        "meow_probe_score",
        "Aggregate leakage scores per attack and model.",
        ["attack", "model", "metric"],
        registry=registry,
    )
    examples = Gauge("meow_probe_examples", "Probes run per attack and model.", ["attack", "model"], registry=registry)
    verdict = Gauge(
        "meow_probe_verdict",
        "+1: the subject leaks more than the reference, 0 the same, -1 less.",
        ["attack", "subject", "reference"],
        registry=registry,
    )
    finished = Gauge("meow_probe_last_run_timestamp_seconds", "When the probe finished.", registry=registry)
    for attack, outcomes in results.items():
        for model, outcome in outcomes.items():
            if outcome.skipped is not None:
                continue
            examples.labels(attack, model).set(len(outcome.rows))
            for metric, value in outcome.aggregate.items():
                if not math.isnan(value):
                    score.labels(attack, model, metric).set(value)
    for attack, v in verdicts.items():
        if v.direction is not None:
            verdict.labels(attack, v.subject, v.reference).set(SIGN[v.direction])
    finished.set(time.time())
    write_to_textfile(str(path), registry)
