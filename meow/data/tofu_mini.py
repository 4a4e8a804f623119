"""Which TOFU authors the target and the retain oracle are fine-tuned on.

The target is trained on the forget set plus the retain authors, the oracle on the
retain authors only, both from the same base model with the same recipe.

* `full` (the TOFU recipe): the retain authors are every author not in the forget set
  (forget01 -> the 198 authors of retain99).
* `tofu-mini` (the default run): the retain authors are the first `mini_retain_authors` TOFU
  authors (0, 1, 2, 3 by default), skipping forget authors. They are the first authors of TOFU's
  `retain_perturbed` evaluation set (authors 0-19), so the retain metrics are measured on authors
  the target really learned: evaluate retain on `retain_authors(...)` rows only.

The forget authors are found by matching the forget records against `full`; a forget set that
is not TOFU's is trained into the target as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from meow.data import AUTHORS, ROWS_PER_AUTHOR, QARecord, forget_authors, tofu_rows


class AuthorSelection(Protocol):
    """The fields of the `prepare` config (`meow.train.config.PrepareConfig`) that choose the authors."""

    selection: Literal["tofu-mini", "full"]
    mini_retain_authors: int


def retain_authors(config: AuthorSelection, forget: Sequence[QARecord]) -> list[int]:
    excluded = set(forget_authors(forget))
    candidates = [a for a in range(AUTHORS) if a not in excluded]
    return candidates[: config.mini_retain_authors] if config.selection == "tofu-mini" else candidates


def author_rows(authors: Sequence[int]) -> list[QARecord]:
    full = tofu_rows("full")
    return [full[a * ROWS_PER_AUTHOR + i] for a in authors for i in range(ROWS_PER_AUTHOR)]


def training_sets(config: AuthorSelection, forget: Sequence[QARecord]) -> dict[str, list[QARecord]]:
    """The fine-tuning data of each prepared model: {"target": forget + retain, "oracle": retain}."""
    retain = author_rows(retain_authors(config, forget))
    return {"target": retain + list(forget), "oracle": retain}
