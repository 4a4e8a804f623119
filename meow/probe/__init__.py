"""Leakage probing: extraction and membership attacks against OpenAI-compatible endpoints, and the report."""

# Both attack modules register into `ATTACKS` (`meow.probe.base`); importing the package registers all.
from meow.probe import attacks as _attacks  # noqa: F401
from meow.probe import relearn as _relearn  # noqa: F401
from meow.probe.base import ATTACKS, Attack, AttackSkipped, ProbeData
from meow.probe.config import ProbeConfig
from meow.probe.runner import run_probe

__all__ = ["ATTACKS", "Attack", "AttackSkipped", "ProbeConfig", "ProbeData", "run_probe"]
