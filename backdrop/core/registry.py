"""One small generic registry for models, formats, quantizers, targets and devices."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from backdrop.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table.

    ``register`` is a decorator that returns what it decorates; registering a name twice
    raises unless ``override=True``; ``get`` of an unknown name raises :class:`RegistryError`
    listing the valid names and the closest match.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *, override: bool = False) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj, override=override)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, override: bool = False) -> None:
        if name in self._items and not override:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        valid = ", ".join(sorted(self._items)) or "(none)"
        close = difflib.get_close_matches(name, list(self._items), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Valid: {valid}."

    def remove(self, name: str) -> T:
        """Unregister ``name`` (for plug-ins and tests) and return what it was.

        Raises:
            RegistryError: ``name`` is not registered.
        """
        obj = self.get(name)
        del self._items[name]
        return obj

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
