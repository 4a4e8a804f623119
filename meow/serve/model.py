"""One served model: a Serve deployment around a vLLM engine that answers the OpenAI subset.

Prompts are rendered and tokenized here, with the same tokenizer and the same chat template
meow trains and evaluates with (`meow.models.templates`), so a question asked through
`/v1/chat/completions` is exactly the prompt TOFU evaluation uses. The ingress has already
checked everything that does not need the tokenizer.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from meow.engines import Generation, SamplingConfig
from meow.models.templates import has_chat_template, question_prompt
from meow.serve.config import Limits, ModelEntry
from meow.serve.protocol import ApiError, ChatCompletionRequest, ChatMessage, CompletionRequest, TokenizeRequest


def _client_errors_returned(method: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict | ApiError]]:
    """Serve logs every exception a replica raises as a failed request, with a traceback. A
    client's mistake is not a server failure: it travels back to the ingress as a value."""

    @functools.wraps(method)
    async def wrapper(self, request):
        try:
            return await method(self, request)
        except ApiError as e:
            return e

    return wrapper


class ModelServer:
    """Plain class; `meow.serve.app` turns it into one deployment per model."""

    def __init__(self, entry: ModelEntry, limits: Limits):
        from meow.engines import create_engine
        from meow.serve.batcher import ContinuousBatcher

        self.name, self.limits = entry.name, limits
        self.max_model_len = entry.engine.max_model_len
        engine = create_engine(entry.spec, entry.engine)
        # The first request compiles helpers (seconds): pay for it before the replica reports ready.
        engine.generate(["warm up"], SamplingConfig(max_new_tokens=2))
        engine.score(["warm"], [" up"])
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.encode = engine.encode
        self.batcher = ContinuousBatcher(engine)

    def __del__(self) -> None:
        """Serve calls this when it stops the replica: stop stepping, then release the engine."""
        # Attributes are missing when the constructor failed part way.
        for part in ("batcher", "engine"):
            if part in self.__dict__:
                self.__dict__[part].close()

    def check_health(self) -> None:
        """Serve calls this periodically; raising restarts the replica."""
        if self.batcher.error is not None:
            raise RuntimeError(f"model {self.name}: engine loop stopped")

    def ready(self) -> bool:
        return self.batcher.error is None

    @_client_errors_returned
    async def completions(self, request: CompletionRequest) -> dict:
        prompts = [self._prompt_ids(p) for p in request.prompts]
        for ids in prompts:
            self._check_length(ids, request.max_tokens, "prompt")
        # Echo gives back the prompt as sent; token-id prompts as their decoded text.
        echoes = [
            (p if isinstance(p, str) else self.tokenizer.decode(ids)) if request.echo else None
            for p, ids in zip(request.prompts, prompts)
        ]
        jobs = [
            self._complete(ids, self._sampling(request, request.max_tokens, j), echo, request.logprobs is not None)
            for ids, echo in zip(prompts, echoes)
            for j in range(request.n)
        ]
        results = await asyncio.gather(*jobs)
        choices = [{"index": i, **choice} for i, (choice, _) in enumerate(results)]
        completion_tokens = sum(used for _, used in results)
        return _envelope("cmpl", "text_completion", self.name, choices, sum(map(len, prompts)), completion_tokens)

    @_client_errors_returned
    async def chat(self, request: ChatCompletionRequest) -> dict:
        ids = self.encode(self._render(request.messages, request.add_generation_prompt, request.continue_final_message))
        budget = request.token_budget(default=max(1, min(self.limits.max_tokens, self.max_model_len - len(ids))))
        self._check_length(ids, budget, "messages")
        generations = await asyncio.gather(
            *(self.batcher.generate(ids, self._sampling(request, budget, j)) for j in range(request.n))
        )
        logprobs = (
            await asyncio.gather(*(self._chat_logprobs(ids, g) for g in generations)) if request.logprobs else None
        )
        choices = [
            {
                "index": j,
                "message": {"role": "assistant", "content": g.text},
                "logprobs": logprobs[j] if logprobs else None,
                "finish_reason": g.finish_reason,
            }
            for j, g in enumerate(generations)
        ]
        used = sum(len(g.token_ids) for g in generations)
        return _envelope("chatcmpl", "chat.completion", self.name, choices, len(ids), used)

    async def _chat_logprobs(self, ids: list[int], generation: Generation) -> dict:
        values = await self.batcher.score(ids, generation.token_ids)
        strings = self._token_strings(generation.token_ids)
        return {
            "content": [
                {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                for t, lp in zip(strings, values)
            ]
        }

    @_client_errors_returned
    async def tokenize(self, request: TokenizeRequest) -> dict:
        if request.messages is not None:
            text = self._render(request.messages, request.add_generation_prompt, request.continue_final_message)
        else:
            text = request.prompt or ""
        ids = self.encode(text)
        return {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids}

    async def _complete(
        self, ids: list[int], sampling: SamplingConfig | None, echo: str | None, want_logprobs: bool
    ) -> tuple[dict, int]:
        """One choice of a completion (after the echoed prompt, when `echo`) and the number of tokens it generated."""
        # max_tokens=0 (with echo): nothing to generate, only the prompt's log-probs.
        generation = await self.batcher.generate(ids, sampling) if sampling else Generation("", [], "length")
        new = generation.token_ids
        text = (echo or "") + generation.text
        logprobs = None
        if want_logprobs:
            tokens = ids + new if echo is not None else new
            if echo is not None:
                # The first token has no context to be predicted from (None, as in OpenAI's API).
                values = [None] + (await self.batcher.score(tokens[:1], tokens[1:]) if len(tokens) > 1 else [])
            else:
                values = await self.batcher.score(ids, new) if new else []
            logprobs = self._logprobs(tokens, values)
        return {"text": text, "logprobs": logprobs, "finish_reason": generation.finish_reason}, len(new)

    def _logprobs(self, tokens: list[int], values: Sequence[float | None]) -> dict:
        """The completions API's logprobs block; `text_offset` counts characters into `text`."""
        strings = self._token_strings(tokens)
        offsets, position = [], 0
        for s in strings:
            offsets.append(position)
            position += len(s)
        return {"tokens": strings, "token_logprobs": list(values), "top_logprobs": None, "text_offset": offsets}

    def _token_strings(self, tokens: list[int]) -> list[str]:
        return self.tokenizer.batch_decode([[t] for t in tokens])

    def _sampling(self, request, max_tokens: int, choice: int) -> SamplingConfig | None:
        if max_tokens == 0:
            return None
        # With a seed, choice j uses seed + j: n identical samples would make `n` pointless.
        seed = None if request.seed is None else request.seed + choice
        return SamplingConfig(
            max_new_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=seed,
            stop=request.stop_strings,
        )

    def _prompt_ids(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            return self.encode(prompt)
        vocab = len(self.tokenizer)
        if any(not 0 <= t < vocab for t in prompt):
            raise ApiError(400, f"token ids must be in [0, {vocab})", param="prompt")
        return list(prompt)

    def _check_length(self, ids: list[int], max_tokens: int, param: str) -> None:
        if not ids:
            raise ApiError(400, "the prompt is empty", param=param)
        if len(ids) > self.limits.max_prompt_tokens:
            raise ApiError(
                400,
                f"the prompt has {len(ids)} tokens; this server accepts at most {self.limits.max_prompt_tokens}",
                param=param,
            )
        if len(ids) + max_tokens > self.max_model_len:
            raise ApiError(
                400,
                f"{len(ids)} prompt tokens + {max_tokens} new tokens exceed the model's context of "
                f"{self.max_model_len} tokens",
                param=param,
            )

    def _render(self, messages: list[ChatMessage], add_generation_prompt: bool, continue_final_message: bool) -> str:
        if continue_final_message:
            if messages[-1].role != "assistant":
                raise ApiError(400, "continue_final_message needs an assistant message last", param="messages")
            if add_generation_prompt:
                raise ApiError(
                    400, "set add_generation_prompt=false with continue_final_message", param="add_generation_prompt"
                )
        if has_chat_template(self.tokenizer):
            return self.tokenizer.apply_chat_template(
                [m.model_dump() for m in messages],
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
            )
        # No chat template: the `Question:/Answer:` layout meow trains and evaluates such models with.
        roles = [m.role for m in messages]
        if roles == ["user"] and add_generation_prompt:
            return question_prompt(self.tokenizer, messages[0].content)
        if roles == ["user", "assistant"] and continue_final_message:
            return question_prompt(self.tokenizer, messages[0].content) + messages[1].content
        raise ApiError(
            400,
            "this model has no chat template: send one user message, or one user message and the start of "
            "the assistant's answer with continue_final_message",
            param="messages",
        )


def _envelope(prefix: str, kind: str, model: str, choices: list[dict], prompt_tokens: int, new_tokens: int) -> dict:
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": new_tokens,
            "total_tokens": prompt_tokens + new_tokens,
        },
    }
