"""What a probe run asks: which endpoint and models, which forget set, which attacks with which options."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Base URL of an OpenAI-compatible server (the OpenAI API under <endpoint>/v1).
    endpoint: str
    # Served model names, in the report's column order.
    models: tuple[str, ...] = Field(min_length=1)
    # A TOFU split name (its `_perturbed` sibling supplies paraphrased questions) or a file/URI,
    # read with the same field mapping as a spec's `forget` (`meow probe --run` takes all four from
    # the run's spec).
    forget: str = "forget01"
    question_field: str = "question"
    answer_field: str = "answer"
    format: Literal["jsonl", "json", "parquet", "csv"] | None = None
    # Non-members for membership inference, of the same kind as the forget set: a held-out part of the
    # user's facts (a file with the forget set's field mapping, or a TOFU split), or `counterfactual`:
    # each forget fact with its secret spans replaced by structured inversion (never shown to a model).
    # Unset: TOFU's holdout01 for a TOFU forget split, counterfactual facts for any other forget set.
    holdout: str | None = None
    # Registered attack names; `all` for every one.
    attacks: tuple[str, ...] = Field(("all",), validate_default=True)
    # Per-attack options by attack name, validated by that attack's own config class.
    options: dict[str, dict[str, Any]] = {}
    # Probe only the first N forget (and holdout) records.
    limit: int | None = Field(None, ge=2)
    api_key: SecretStr | None = None
    # Examples in flight at once (the server sheds the excess with 429; the client retries).
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(600, gt=0)
    # Verdicts compare `subject` with the first of `references` that was probed: the oracle (never
    # trained on the forget set), else `base` (the model before it learned the facts), else, as a
    # last resort the report flags, the `original` model before unlearning.
    subject: str = "unlearned"
    references: tuple[str, ...] = ("oracle", "base", "original")
    seed: int = 0

    @field_validator("endpoint")
    @classmethod
    def _no_trailing_slash(cls, endpoint: str) -> str:
        return endpoint.rstrip("/")

    @field_validator("attacks")
    @classmethod
    def _registered_attacks(cls, attacks: tuple[str, ...]) -> tuple[str, ...]:
        from meow.probe.base import ATTACKS

        names = tuple(ATTACKS.names()) if "all" in attacks else attacks
        unknown = [n for n in names if n not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack(s) {unknown}; registered: {ATTACKS.names()}")
        return names

    @field_validator("options")
    @classmethod
    def _valid_options(cls, options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from meow.probe.base import ATTACKS

        for name, values in options.items():
            if name not in ATTACKS:
                raise ValueError(f"options for unknown attack {name!r}; registered: {ATTACKS.names()}")
            ATTACKS.get(name).Config.model_validate(values)
        return options
