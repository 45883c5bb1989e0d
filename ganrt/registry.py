"""A registry of named entries (variants, import layouts), the way torchvision's models/_api.py keeps its models.

Registering a name twice is a programming error; asking for an unknown name is the user's, and
the error lists the valid names. Built-in entries are imported on first use, by `load_builtins`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ganrt.errors import UsageError


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order."""

    def __init__(self, kind: str, load_builtins: Callable[[], None]) -> None:
        self.kind, self._load_builtins, self._entries = kind, load_builtins, {}  # type: dict[str, T]

    def register(self, entry: T) -> T:
        """Add an entry; a duplicate name is a programming error."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        """An entry by name; an unknown name lists the valid ones."""
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._load_builtins()
        return list(self._entries)
