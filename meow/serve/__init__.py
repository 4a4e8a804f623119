"""Ray Serve app: several models on vLLM engines behind one OpenAI-compatible HTTP ingress."""

from meow.serve.config import Limits, ModelEntry, ServeConfig

__all__ = ["Limits", "ModelEntry", "ServeConfig"]
