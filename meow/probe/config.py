"""What a probe run asks: which endpoint and models, which forget set, which attacks with which options."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class ProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Base URL of an OpenAI-compatible server (the OpenAI API under <endpoint>/v1).
    endpoint: str
    # Served model names, in the report's column order.
    models: tuple[str, ...] = Field(min_length=1)
    # A TOFU split name (its `_perturbed` sibling supplies paraphrased questions) or a file/URI.
    forget: str = "forget01"
    # Non-members for membership inference: TOFU questions no model was trained on.
    holdout: str = "holdout01"
    # Registered attack names; `all` for every one.
    attacks: tuple[str, ...] = ("all",)
    # Per-attack options by attack name, validated by that attack's own config class.
    options: dict[str, dict[str, Any]] = {}
    # Probe only the first N forget (and holdout) records.
    limit: int | None = Field(None, ge=2)
    api_key: SecretStr | None = None
    # Examples in flight at once (the server sheds the excess with 429; the client retries).
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(600, gt=0)
    # Verdicts compare `subject` with the first of `references` that was probed.
    subject: str = "unlearned"
    references: tuple[str, ...] = ("oracle", "original")
    seed: int = 0

    @field_validator("endpoint")
    @classmethod
    def _no_trailing_slash(cls, endpoint: str) -> str:
        return endpoint.rstrip("/")

    @model_validator(mode="after")
    def _known_attacks(self) -> ProbeConfig:
        from meow.probe.attacks import ATTACKS

        names = ATTACKS.names() if "all" in self.attacks else list(self.attacks)
        for name in [*names, *self.options]:
            ATTACKS.get(name)  # raises, listing the registered names
        for name in self.options:
            ATTACKS.get(name).Config.model_validate(self.options[name])
        object.__setattr__(self, "attacks", tuple(names))
        return self

    def attack_config(self, name: str) -> BaseModel:
        from meow.probe.attacks import ATTACKS

        return ATTACKS.get(name).Config.model_validate(self.options.get(name, {}))
