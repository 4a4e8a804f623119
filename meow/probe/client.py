"""An attack's view of a model: questions in, answers and answer log-probs out, over HTTP.

Works against any OpenAI-compatible server that also speaks vLLM's extensions (`meow serve`,
`vllm serve`): chat completions for questions, `continue_final_message` to make the model go on
from the start of an answer, and `/tokenize` plus completions with `echo` and `logprobs` to read
the log-prob of every answer token under the model's own chat template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx
import openai
from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


class ProbeClient:
    def __init__(self, endpoint: str, api_key: str | None = None, concurrency: int = 8, timeout_s: float = 600):
        # Retries honour the server's Retry-After on 429 and back off on 5xx and dropped connections.
        self.openai = openai.AsyncOpenAI(
            base_url=f"{endpoint}/v1", api_key=api_key or "unused", max_retries=8, timeout=timeout_s
        )
        # vLLM serves /tokenize next to /v1, not under it.
        self.root = self.openai.with_options(base_url=endpoint)
        self.concurrency = concurrency

    async def served_models(self) -> list[str]:
        return [m.id async for m in self.openai.models.list()]

    async def ask(
        self,
        model: str,
        question: str,
        *,
        max_tokens: int,
        answer_start: str | None = None,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
    ) -> list[str]:
        """`n` answers to `question`; with `answer_start`, continuations of that partial answer."""
        messages = [{"role": "user", "content": question}]
        extra = None
        if answer_start is not None:
            messages.append({"role": "assistant", "content": answer_start})
            extra = {"continue_final_message": True, "add_generation_prompt": False}
        response = await self.openai.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            temperature=temperature,
            n=n,
            seed=seed,
            extra_body=extra,
        )
        return [c.message.content or "" for c in sorted(response.choices, key=lambda c: c.index)]

    async def answer_logprobs(self, model: str, question: str, answer: str) -> list[float]:
        """Log-prob of each token of `answer` following `question`, as the model's chat template puts them."""
        user = [{"role": "user", "content": question}]
        prefix, full = await asyncio.gather(
            self._tokenize(model, user, add_generation_prompt=True),
            self._tokenize(
                model,
                [*user, {"role": "assistant", "content": answer}],
                add_generation_prompt=False,
                continue_final_message=True,
            ),
        )
        # Where the answer starts: tokens merging across the boundary belong to the answer.
        start = next((i for i, (a, b) in enumerate(zip(prefix, full)) if a != b), min(len(prefix), len(full)))
        response = await self.openai.completions.create(
            model=model, prompt=full, max_tokens=0, echo=True, logprobs=0, temperature=0
        )
        values = response.choices[0].logprobs.token_logprobs[: len(full)]
        return [float(v) for v in values[max(start, 1) :]]

    async def _tokenize(self, model: str, messages: list[dict], **flags: bool) -> list[int]:
        response = await self.root.post(
            "/tokenize", cast_to=httpx.Response, body={"model": model, "messages": messages, **flags}
        )
        return response.json()["tokens"]

    async def map(self, fn: Callable[[T], Awaitable[R]], items: Sequence[T], desc: str) -> list[R]:
        """`fn` over `items`, `concurrency` at a time, in order, with a progress bar."""
        slots = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(items), desc=desc, unit="ex", dynamic_ncols=True)

        async def one(item: T) -> R:
            async with slots:
                result = await fn(item)
            bar.update(1)
            return result

        try:
            return await asyncio.gather(*(one(item) for item in items))
        finally:
            bar.close()

    async def close(self) -> None:
        await self.openai.close()
