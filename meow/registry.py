"""Name -> implementation registries. Specs (and tenants) can name registered things and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of implementations, listed where it is made (`Registry("rule", [("top_k", top_k)])`)
    or built up with `RULES.register("top_k")(top_k)`; a name registered twice is an error."""

    def __init__(self, kind: str, items: Iterable[tuple[str, T]] = ()):
        self.kind = kind
        self._items: dict[str, T] = {}
        for name, item in items:
            self.register(name)(item)

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self._unknown(name)) from None

    def validate(self, name: str) -> str:
        """`name` if registered, else a ValueError naming what is: for config field validators."""
        if name not in self._items:
            raise ValueError(self._unknown(name))
        return name

    def _unknown(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
