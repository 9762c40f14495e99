"""One generic registry for models and metrics.

Entries come from three places, looked up in this order:
  1. objects registered with the ``register`` decorator,
  2. lazy ``"module:attr"`` strings (built-ins, imported only when asked for),
  3. the package entry-point group (third-party plugins, loaded on first lookup).
A wrong name raises a UserError with "did you mean" suggestions.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

from tas_eval.errors import UserError


class Registry:
    """A name -> object table for one kind of plugin (``kind`` is used in messages)."""

    def __init__(self, kind: str, entry_point_group: str):
        self.kind = kind
        self.group = entry_point_group
        self._objects: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        """Decorator: ``@REGISTRY.register("id")`` (defaults to the object's ``name``/``id`` or ``__name__``)."""

        def deco(obj: Any) -> Any:
            key = name or getattr(obj, "name", None) or getattr(obj, "id", None) or obj.__name__
            self._objects[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: Any) -> None:
        """Register ``obj`` under ``name`` directly."""
        self._objects[name] = obj

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"`` under ``name``; it is imported on first ``get``."""
        self._lazy[name] = target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._objects and ep.name not in self._lazy:
                self._lazy[ep.name] = ep.value

    def names(self) -> list[str]:
        """All known names, sorted."""
        self._load_entry_points()
        return sorted(set(self._objects) | set(self._lazy))

    def get(self, name: str) -> Any:
        """The object registered under ``name``; a UserError naming close matches if there is none."""
        self._load_entry_points()
        if name in self._objects:
            return self._objects[name]
        if name in self._lazy:
            module_name, _, attr = self._lazy[name].partition(":")
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise UserError(f"The {self.kind} '{name}' points to '{self._lazy[name]}', which cannot be imported: {exc}.") from exc
            self._objects[name] = obj
            return obj
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UserError(f"There is no {self.kind} named '{name}'.{hint} Known: {', '.join(self.names()) or 'none'}.")
