"""transformers engine: the reference path (what the MEOW and TOFU authors ran) and a fallback."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from meow.engines.base import Engine, EngineConfig, Generation, SamplingConfig
from meow.hardware import engine_dtype


def torch_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class HFEngine(Engine):
    def __init__(self, model_dir: Path, config: EngineConfig):
        super().__init__(model_dir, config)
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(config.threads)
        self.device = torch_device(config.device)
        dtype = getattr(torch, engine_dtype(config.dtype, self.device.type))
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        self.model.to(self.device).eval()
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id

    def _batches(self, items: list[int], key):
        """Indices in batches of similar length (less padding)."""
        order = sorted(items, key=key)
        size = self.config.batch_size
        return [order[i : i + size] for i in range(0, len(order), size)]

    def _generate_ids(self, prompts: list[list[int]], sampling: list[SamplingConfig]) -> list[Generation]:
        import torch

        results: list[Generation | None] = [None] * len(prompts)
        groups: dict[SamplingConfig, list[int]] = defaultdict(list)
        for i, s in enumerate(sampling):
            groups[s].append(i)
        for config, indices in groups.items():
            if config.seed is not None:
                torch.manual_seed(config.seed)
            for batch in self._batches(indices, key=lambda i: len(prompts[i])):
                width = max(len(prompts[i]) for i in batch)
                # Left padding: every prompt ends where generation starts.
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                    mask[row, width - len(prompts[i]) :] = 1
                sample = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=ids.to(self.device),
                        attention_mask=mask.to(self.device),
                        max_new_tokens=config.max_new_tokens,
                        eos_token_id=sorted(self.stop_token_ids),
                        pad_token_id=self.pad_id,
                        **(sample if not config.greedy else {"do_sample": False, "top_p": None, "top_k": None}),
                    )
                for row, i in enumerate(batch):
                    results[i] = self._finish(out[row, width:].tolist(), config)
        return results  # type: ignore[return-value]

    def _score_ids(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        import torch

        results: list[list[float] | None] = [None] * len(pairs)
        for batch in self._batches(list(range(len(pairs))), key=lambda i: len(pairs[i][0]) + len(pairs[i][1])):
            sequences = [pairs[i][0] + pairs[i][1] for i in batch]
            width = max(len(s) for s in sequences)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(sequences):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, i in enumerate(batch):
                prompt, continuation = pairs[i]
                # Logits at position t predict token t+1.
                positions = torch.arange(len(prompt) - 1, len(prompt) + len(continuation) - 1)
                results[i] = logprobs[row, positions, torch.tensor(continuation)].tolist()
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.__dict__.pop("model", None)
