"""The OpenAI-compatible subset: request schemas, the error type and its JSON shape.

Unknown request fields are errors (400) rather than silently ignored, so a client never believes
a parameter took effect when it did not. Where vLLM's server extends the OpenAI API
(`continue_final_message`, `add_generation_prompt`, `/tokenize`) we follow vLLM's names, so the
probe suite runs against `vllm serve` as well.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NO_ALTERNATIVES = "only 0 is supported: the log-prob of each token, without top-k alternatives"


def _no_alternatives(value: int | None) -> int | None:
    if value not in (None, 0):
        raise ValueError(NO_ALTERNATIVES)
    return value


class ApiError(Exception):
    """A request that gets a 4xx/5xx answer with an OpenAI-style JSON error body."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None):
        # Every argument goes to Exception so the error survives pickling across Ray processes.
        super().__init__(status, message, type, param)
        self.status, self.message, self.type, self.param = status, message, type, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.status}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    temperature: float = Field(1.0, ge=0, le=2)  # OpenAI's default
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: Literal[False] = False
    user: str | None = None

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(_Request):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int = Field(16, ge=0)  # 0 only with echo: score the prompt, generate nothing
    echo: bool = False
    # Log-prob of each token (the prompt's too with echo). Alternatives (top-k) are not offered.
    logprobs: int | None = None

    _logprobs = field_validator("logprobs")(_no_alternatives)

    @model_validator(mode="after")
    def _zero_tokens_needs_echo(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens=0 is only meaningful with echo=true")
        return self

    @property
    def prompts(self) -> list[str] | list[list[int]]:
        """The prompt as a list of prompts (text or token ids)."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [p]  # type: ignore[list-item]
        return p  # type: ignore[return-value]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # newer clients send this name
    logprobs: bool = False
    top_logprobs: int | None = None
    # vLLM extensions: continue the last (assistant) message instead of starting a new turn.
    add_generation_prompt: bool = True
    continue_final_message: bool = False

    _top_logprobs = field_validator("top_logprobs")(_no_alternatives)

    def token_budget(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class TokenizeRequest(BaseModel):
    """vLLM's `/tokenize`: a text prompt, or chat messages rendered with the model's template."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        return self
