"""`meow probe`: the attack suite against served models, and the leakage report."""

from __future__ import annotations

import os
from pathlib import Path

import click
import yaml
from pydantic import ValidationError

from meow.cli.serve import name_spec


@click.command()
@click.option("--endpoint", required=True, help="Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000).")
@click.option("--models", default="original,unlearned", show_default=True, help="Served model names, comma-separated.")
@click.option("--forget", default="forget01", show_default=True, help="TOFU split or a file/URI of the forget set.")
@click.option("--holdout", default="holdout01", show_default=True, help="Non-members for membership inference.")
@click.option("--attacks", default="all", show_default=True, help="Comma-separated attack names, or all.")
@click.option("--run", "run", help="A MEOW run: report into <run>/probe; its weights enable relearning.")
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
    models: str,
    forget: str,
    holdout: str,
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
    local = {}
    if run:
        from meow.serve.rundir import locate_run, run_models

        local = run_models(run)
        out = out or str(locate_run(run) / "probe")
    local.update(name_spec(w, "--weights") for w in weights)
    data = (yaml.safe_load(Path(config_path).read_text()) or {}) if config_path else {}
    data.update(
        endpoint=endpoint,
        models=[m.strip() for m in models.split(",") if m.strip()],
        forget=forget,
        holdout=holdout,
        attacks=[a.strip() for a in attacks.split(",") if a.strip()],
    )
    data.update({k: v for k, v in {"limit": limit, "concurrency": concurrency}.items() if v is not None})
    if os.environ.get(token_env):
        data["api_key"] = os.environ[token_env]
    try:
        config = ProbeConfig.model_validate(data)
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    directory = Path(out)  # type: ignore[arg-type]
    try:
        run_probe(config, directory, weights=local)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo((directory / "leakage.md").read_text(), err=True)
    click.echo(str(directory))
