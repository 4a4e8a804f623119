"""Leakage probing: extraction and membership attacks against OpenAI-compatible endpoints, and the report."""

from meow.probe.attacks import ATTACKS, Attack, AttackSkipped, ProbeData
from meow.probe.config import ProbeConfig
from meow.probe.runner import run_probe

__all__ = ["ATTACKS", "Attack", "AttackSkipped", "ProbeConfig", "ProbeData", "run_probe"]
