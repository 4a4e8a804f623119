"""`meow finetune`: prepare the TOFU target and retain oracle (cached by content hash) outside a pipeline."""

from __future__ import annotations

import click

from meow.pipeline.spec import PipelineSpec, SpecError, load_spec_file


@click.command()
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False), help="Take model, forget set and prepare settings from this pipeline spec.")
@click.option("--model", help="Base model: embedded name, HF directory or s3:// URI (default: the spec's).")
@click.option("--forget", help="Forget set: TOFU split name or file/URI (default: the spec's).")
@click.option("--selection", type=click.Choice(["tofu-mini", "full"]), help="TOFU authors to train on (default: the spec's).")
@click.option("--role", type=click.Choice(["target", "oracle", "both"]), default="both", show_default=True)
@click.option("--no-cache", is_flag=True, help="Train again even if a prepared model with the same inputs exists.")
def finetune(
    spec_path: str | None, model: str | None, forget: str | None, selection: str | None, role: str, no_cache: bool
) -> None:
    """Fine-tune the TOFU target (forget + retain authors) and/or the retain oracle; prints their directories."""
    from meow.cluster import ray_session
    from meow.models import meow_home, resolve_model
    from meow.train import tofu_mini
    from meow.train.finetune import prepared_model

    try:
        spec = load_spec_file(spec_path) if spec_path else PipelineSpec()
    except SpecError as e:
        raise click.ClickException(str(e)) from None
    prepare = spec.prepare.model_copy(update={"selection": selection} if selection else {})
    spec = spec.model_copy(
        update={
            "model": model or spec.model,
            "forget": spec.forget.model_copy(update={"source": forget} if forget else {}),
            "prepare": prepare,
        }
    )
    base = resolve_model(spec.model)
    sets = tofu_mini.training_sets(prepare, spec.forget.records())
    roles = ["oracle", "target"] if role == "both" else [role]
    with ray_session(num_cpus=spec.ray.num_cpus, address=spec.ray.address):
        for name in roles:
            directory, manifest = prepared_model(
                base, sets[name], prepare.train, str(meow_home() / "prepared" / "checkpoints"), f"prepare-{name}",
                cache=not no_cache,
            )
            state = "cached" if manifest["cached"] else f"trained in {manifest.get('train_seconds')} s"
            click.echo(f"{name}\t{directory}\t({len(sets[name])} QA, {state})")
