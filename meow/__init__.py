"""meow: make large language models forget (MEOW unlearning on Ray)."""

__version__ = "0.1.0"
