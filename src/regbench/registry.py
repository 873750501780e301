"""Name -> factory maps with forgiving keys and a loud error listing the valid names.

``Registry("norm")`` accepts ``batch``, ``BatchNorm`` and ``batch_norm`` alike once
aliases are registered; an unknown name raises :class:`ConfigError` naming the config
key and the canonical choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regbench.errors import ConfigError


def normalize_key(name: str) -> str:
    return str(name).lower().replace("_", "").replace("-", "").replace(" ", "")


class Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}
        self._canonical: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[Callable], Callable]:
        def deco(fn: Callable) -> Callable:
            self._factories[name] = fn
            for alias in (name, *aliases):
                self._canonical[normalize_key(alias)] = name
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._factories)

    def canonical(self, name: str, key: str | None = None) -> str:
        found = self._canonical.get(normalize_key(name)) if isinstance(name, str) else None
        if found is None:
            raise ConfigError(
                f"{key or self.kind}={name!r} is not a known {self.kind}; "
                f"choose one of: {', '.join(self.names())}"
            )
        return found

    def get(self, name: str, key: str | None = None) -> Callable[..., Any]:
        return self._factories[self.canonical(name, key)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_key(name) in self._canonical
