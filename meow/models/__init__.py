"""Model specs: an embedded model's name, a local Hugging Face directory, or an `s3://` URI of one."""

from meow.models.cache import meow_home
from meow.models.registry import EMBEDDED_MODELS, EmbeddedModel, pull_embedded
from meow.models.resolve import resolve_model

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "meow_home", "pull_embedded", "resolve_model"]
