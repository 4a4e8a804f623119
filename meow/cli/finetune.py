"""`meow finetune`: fine-tune a model on a forget set (the model to unlearn) and, with TOFU's retain mix,
the retain oracle; cached by content hash, outside a pipeline."""

from __future__ import annotations

import click

from meow.cli.options import forget_fields
from meow.pipeline.spec import PipelineSpec, SpecError, load_spec_file


@click.command()
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Take model, forget set and prepare settings from this pipeline spec.",
)
@click.option("--model", help="Base model: embedded name, HF directory or s3:// URI (default: the spec's).")
@click.option("--forget", help="Forget set: TOFU split name or file/URI (default: the spec's).")
@forget_fields
@click.option(
    "--retain-mix/--no-retain-mix",
    default=None,
    help="Add TOFU's retain authors to the target and train the retain oracle on them [default: on for a "
    "TOFU forget set, off for custom data].",
)
@click.option("--epochs", type=float, help="Training epochs (default: the spec's prepare.train.epochs).")
@click.option(
    "--selection",
    type=click.Choice(["tofu-mini", "full"]),
    help="TOFU authors of the retain mix [default: the spec's].",
)
@click.option("--role", type=click.Choice(["target", "oracle", "both"]), default="both", show_default=True)
@click.option("--no-cache", is_flag=True, help="Train again even if a prepared model with the same inputs exists.")
def finetune(
    spec_path: str | None,
    model: str | None,
    forget: str | None,
    question_field: str | None,
    answer_field: str | None,
    fmt: str | None,
    retain_mix: bool | None,
    epochs: float | None,
    selection: str | None,
    role: str,
    no_cache: bool,
) -> None:
    """Fine-tune the target (the forget set, plus TOFU's retain authors with the retain mix) and/or the
    retain oracle; says what each trains on (records by source) and prints their directories.

    Without the retain mix there is no oracle to train: the base model is the reference that never
    saw the facts (`meow serve --run` serves it as `base` for a run on the fine-tuned model).
    """
    from meow.cluster import ray_session
    from meow.data import DataError
    from meow.models import meow_home, resolve_model
    from meow.train.finetune import finetune_sets, prepared_model

    try:
        spec = load_spec_file(spec_path) if spec_path else PipelineSpec()
    except SpecError as e:
        raise click.ClickException(str(e)) from None
    train = spec.prepare.train.model_copy(update={"epochs": epochs} if epochs else {})
    prepare = spec.prepare.model_copy(update={"train": train, **({"selection": selection} if selection else {})})
    mapping = {"source": forget, "question_field": question_field, "answer_field": answer_field, "format": fmt}
    spec = spec.model_copy(
        update={
            "model": model or spec.model,
            "forget": spec.forget.model_copy(update={k: v for k, v in mapping.items() if v is not None}),
            "prepare": prepare,
        }
    )
    base = resolve_model(spec.model)
    try:
        records = spec.forget.records()
    except DataError as e:
        raise click.ClickException(str(e)) from None
    sets, counts = finetune_sets(prepare, records, spec.forget.source, retain_mix)
    roles = ["oracle", "target"] if role == "both" else [role]
    for name in roles:
        parts = " + ".join(f"{n} {source}" for source, n in counts[name].items()) or "nothing"
        click.echo(f"{name}: {len(sets[name])} QA = {parts}; {train.epochs:g} epochs", err=True)
    for name in roles:
        if not sets[name]:
            click.echo(f"{name}\t{base}\t(0 QA without the retain mix: the base model is the reference)")
    trained = [name for name in roles if sets[name]]
    if not trained:
        return
    with ray_session(num_cpus=spec.ray.num_cpus, address=spec.ray.address):
        for name in trained:
            directory, manifest = prepared_model(
                base, sets[name], train, str(meow_home() / "prepared" / "checkpoints"), f"prepare-{name}",
                cache=not no_cache,
            )
            state = "cached" if manifest["cached"] else f"trained in {manifest.get('train_seconds')} s"
            click.echo(f"{name}\t{directory}\t({len(sets[name])} QA, {state})")
