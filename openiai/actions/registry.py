"""Action registration and the context a handler runs with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..services import Services


@dataclass
class Context:
    account_id: int
    version: str
    request_id: str
    services: "Services"


Handler = Callable[[Context, Any], dict]
HANDLERS: dict[str, Handler] = {}


def action(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler: it gets the validated request model and returns the output fields."""

    def register(fn: Handler) -> Handler:
        for name in names:
            if name in HANDLERS:
                raise RuntimeError(f"action {name} registered twice")
            HANDLERS[name] = fn
        return fn

    return register
