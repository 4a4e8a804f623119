"""`meow serve`: several models behind one OpenAI-compatible HTTP endpoint (Ray Serve)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import yaml
from pydantic import ValidationError


@click.command()
@click.option("--model", "models", multiple=True, metavar="NAME=SPEC", help="A model to serve (repeatable).")
@click.option("--run", "run", help="A MEOW run (directory, s3:// or id under $MEOW_RUNS): original, unlearned, oracle.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML ServeConfig.")
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="HTTP port [default: 8000].")
@click.option("--token-env", default="MEOW_SERVE_TOKEN", show_default=True, help="Env var with the bearer token.")
@click.option("--address", default=None, help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray).")
@click.option("--num-cpus", type=int, default=None, help="CPUs of a local Ray.")
@click.option("--metrics-port", type=int, default=None, help="Prometheus port of a local Ray's metrics agent.")
def serve(
    models: tuple[str, ...],
    run: str | None,
    config_path: str | None,
    host: str | None,
    port: int | None,
    token_env: str,
    address: str | None,
    num_cpus: int | None,
    metrics_port: int | None,
) -> None:
    """Serve models until interrupted; prints the base URL once every model is ready.

    Clients use the OpenAI API under <URL>/v1 with the served name in the `model` field. With
    the bearer token variable set, every /v1 request must carry `Authorization: Bearer <token>`.
    """
    from meow.cluster import ray_session
    from meow.serve import ServeConfig
    from meow.serve.app import shutdown, start

    try:
        config = ServeConfig.model_validate(_config_data(models, run, config_path, host, port, token_env))
    except (ValidationError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    if num_cpus is None and address is None and not os.environ.get("RAY_ADDRESS"):
        num_cpus = local_cpus(config)
    with ray_session(num_cpus=num_cpus, address=address, metrics_export_port=metrics_port):
        import ray

        try:
            url = start(config)
            scrape = ray.nodes()[0].get("MetricsExportPort")
            names = ", ".join(m.name for m in config.models)
            click.echo(f"serving {names}; OpenAI API at {url}/v1; Prometheus metrics on port {scrape}", err=True)
            click.echo(url)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            shutdown()


def local_cpus(config) -> int:
    """CPUs of a local Ray: the machine's, or enough for every replica (a run's original, unlearned and
    oracle are three one-core replicas; on two cores the third would wait unscheduled for ever)."""
    import math

    wanted = sum(m.num_cpus * m.num_replicas for m in config.models)
    return max(os.cpu_count() or 1, math.ceil(wanted))


def _config_data(models, run, config_path, host, port, token_env) -> dict:
    data = (yaml.safe_load(Path(config_path).read_text()) or {}) if config_path else {}
    entries = list(data.get("models", []))
    named = dict(name_spec(m, "--model") for m in models)
    if run:
        from meow.serve.rundir import run_models

        named = {**run_models(run), **named}
    entries += [{"name": name, "spec": spec} for name, spec in named.items()]
    if not entries:
        raise click.UsageError("give --model NAME=SPEC, --run RUN or a --config with models")
    data["models"] = entries
    data.update({k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    if os.environ.get(token_env):
        data["api_token"] = os.environ[token_env]
    return data


def name_spec(text: str, option: str) -> tuple[str, str]:
    """`NAME=SPEC` of a --model/--weights option."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise click.BadParameter(f"{text!r}: expected NAME=SPEC", param_hint=option)
    return name, spec
