"""`meow probe`: the attack suite against served models, and the leakage report."""

from __future__ import annotations

import os
from pathlib import Path

import click
import yaml
from pydantic import ValidationError

from meow.cli.options import forget_fields
from meow.cli.serve import name_spec


@click.command()
@click.option("--endpoint", required=True, help="Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000).")
@click.option(
    "--models",
    help="Served model names, comma-separated [default: the run's models with --run, else original,unlearned].",
)
@click.option("--forget", help="TOFU split or a file/URI of the forget set [default: the run's, else forget01].")
@forget_fields
@click.option(
    "--holdout",
    help="Non-members for membership inference: held-out facts (a file, same fields as --forget), a TOFU split, "
    "or `counterfactual` [default: holdout01 for TOFU, counterfactual facts otherwise].",
)
@click.option(
    "--reference",
    help="Served model the verdicts compare with (never trained on the facts, e.g. the base model) "
    "[default: oracle, else base, else original].",
)
@click.option("--attacks", default="all", show_default=True, help="Comma-separated attack names, or all.")
@click.option(
    "--run",
    "run",
    help="A MEOW run: probe its own forget set (its spec's source and field mapping) and models, report into "
    "<run>/probe; its weights enable relearning.",
)
@click.option("--out", type=click.Path(file_okay=False), help="Report directory [default: <run>/probe].")
@click.option("--weights", multiple=True, metavar="NAME=SPEC", help="Local weights of a served model (relearning).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML ProbeConfig (options per attack, ...).",
)
@click.option("--limit", type=int, help="Probe only the first N forget and holdout records.")
@click.option("--concurrency", type=int, help="Examples in flight at once [default: 8].")
@click.option("--token-env", default="MEOW_SERVE_TOKEN", show_default=True, help="Env var with the bearer token.")
def probe(
    endpoint: str,
    models: str | None,
    forget: str | None,
    question_field: str | None,
    answer_field: str | None,
    fmt: str | None,
    holdout: str | None,
    reference: str | None,
    attacks: str,
    run: str | None,
    out: str | None,
    weights: tuple[str, ...],
    config_path: str | None,
    limit: int | None,
    concurrency: int | None,
    token_env: str,
) -> None:
    """Probe MODELS at ENDPOINT for what they still reveal of the forget set; write the leakage report.

    Prints the side-by-side table and a verdict per attack; the last line is the report directory.
    """
    from meow.probe import ProbeConfig, run_probe

    if not out and not run:
        raise click.UsageError("give --out DIR or --run RUN")
    local: dict[str, str] = {}
    data = (yaml.safe_load(Path(config_path).read_text()) or {}) if config_path else {}
    if run:
        from meow.serve.rundir import locate_run, run_models

        local = run_models(run)
        out = out or str(locate_run(run) / "probe")
        own = run_forget(run)
        if forget:
            click.echo(f"probing --forget {forget}, not the run's forget set {own['forget']}", err=True)
        else:
            data.update(own)
    local.update(name_spec(w, "--weights") for w in weights)
    names = _names(models) if models else [*local] if run else ["original", "unlearned"]
    if reference:
        names += [] if reference in names else [reference]
        data["references"] = [reference]
    data.update(endpoint=endpoint, models=names, attacks=_names(attacks))
    given = {
        "forget": forget,
        "question_field": question_field,
        "answer_field": answer_field,
        "format": fmt,
        "holdout": holdout,
        "limit": limit,
        "concurrency": concurrency,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    if os.environ.get(token_env):
        data["api_key"] = os.environ[token_env]
    try:
        config = ProbeConfig.model_validate(data)
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    directory = Path(out)  # type: ignore[arg-type]
    try:
        run_probe(config, directory, weights=local)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    click.echo((directory / "leakage.md").read_text(), err=True)
    click.echo(str(directory))


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def run_forget(run: str) -> dict:
    """The forget set of a run as its resolved spec (`<run>/spec.yaml`) names it: source and field mapping."""
    from meow.pipeline.spec import SpecError, load_spec_file
    from meow.serve.rundir import locate_run

    try:
        spec = load_spec_file(locate_run(run) / "spec.yaml")
    except SpecError as e:
        raise click.ClickException(str(e)) from None
    forget = spec.forget
    return {
        "forget": forget.source,
        "question_field": forget.question_field,
        "answer_field": forget.answer_field,
        "format": forget.format,
    }
