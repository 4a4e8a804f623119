"""Selection rules (method spec 1.3): which of a fact's candidates to train on, best first.

A rule maps one fact's candidate MEMO scores to candidate positions, at most k, never the same
position twice, in the order the trainer should use them:

* `largest` (default, the released launch script): highest MEMO first;
* `smallest`: lowest MEMO first;
* `random`: a seeded sample, in sampling order.

Ties: the reference takes the top-k *values* (`heapq.nlargest`) and maps each value back to the
first candidate key with an equal score, so two tied candidates yield the first one twice (2-3.5 %
of its Llama2 questions have a duplicate in their top 3). Here positions are ranked, ties broken by
candidate order, so tied candidates are both selected, the earlier one first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from meow.registry import Registry

Rule = Callable[[Sequence[float], int, random.Random], list[int]]
RULES: Registry[Rule] = Registry("selection rule")


@RULES.register("largest")
def largest(scores: Sequence[float], k: int, rng: random.Random) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


@RULES.register("smallest")
def smallest(scores: Sequence[float], k: int, rng: random.Random) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (scores[i], i))[:k]


@RULES.register("random")
def sample(scores: Sequence[float], k: int, rng: random.Random) -> list[int]:
    return rng.sample(range(len(scores)), min(k, len(scores)))


def fact_rng(seed: int, index: int) -> random.Random:
    """The random rule's generator for one fact: fixed by (seed, fact index), whatever the other facts."""
    return random.Random(f"{seed}:{index}")


def select(rule: str, scores: Sequence[float], k: int, seed: int, index: int) -> list[int]:
    return RULES.get(rule)(scores, k, fact_rng(seed, index))
