"""`meow sweep`: unlearning recipes as Ray Tune trials from one run's finished upstream stages."""

from __future__ import annotations

import json
from pathlib import Path

import click

from meow.cli.unlearn import _load, run_dir_option, spec_argument
from meow.cli.validate import InvalidInput, debug_option, one_line_errors


def table(results: list[dict]) -> str:
    from meow.evaluate.metrics import best_forget_quality

    def g(value, digits=3):
        return "-" if value is None else f"{value:.{digits}g}"

    lines = [f"{'trial':<44} {'FQ':>8} {'MU':>7} {'MU/target':>9} {'best FQ@0.95x':>13} {'best FQ@0.9x':>12}"]
    for r in results:
        target = r.get("target_model_utility")
        frontier = r.get("frontier") or [r]
        best = {x: best_forget_quality(frontier, target, x) if target else None for x in (0.95, 0.9)}
        relative = f"{r['model_utility'] / target:.2f}x" if target and r.get("model_utility") is not None else "-"
        name = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r["overrides"].items())
        lines.append(
            f"{name[:44]:<44} {g(r['forget_quality']):>8} {g(r['model_utility']):>7} {relative:>9} "
            f"{g(best[0.95]):>13} {g(best[0.9]):>12}"
        )
    return "\n".join(lines)


@click.command()
@spec_argument
@click.option("--param", "params", multiple=True, required=True,
              help="A spec key and its values, e.g. unlearn.train.learning_rate=1e-5,5e-5 (repeat for a grid).")
@click.option("--concurrent", default=1, show_default=True, help="Trials at once (each takes its own workers and actors).")
@run_dir_option
@debug_option
def sweep(spec_path: str, params: tuple[str, ...], concurrent: int, run_dir: str | None, debug: bool) -> None:
    """Sweep unlearning recipes of SPEC as Ray Tune trials, reusing the run's finished stages before
    `unlearn` (run `meow unlearn SPEC` or `meow run select SPEC` first). Prints a table and, last, one
    JSON line; results also go to <run>/sweep/results.json."""
    from meow.cluster import ray_session
    from meow.pipeline import sweep as sweeps

    spec, location = _load(spec_path, None, run_dir, debug)
    try:
        grid = sweeps.parse_grid(list(params))
        sweeps.check(spec, Path(location).expanduser().resolve(), grid)
    except ValueError as error:
        raise InvalidInput(f"{spec_path}: {error}") from error

    def run() -> list[dict]:
        with ray_session(num_cpus=spec.ray.num_cpus, address=spec.ray.address):
            return sweeps.sweep(spec, location, grid, max_concurrent=concurrent)

    results = one_line_errors(debug, run)
    click.echo(table(results))
    click.echo(json.dumps(results))
