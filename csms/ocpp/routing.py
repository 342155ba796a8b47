"""`@on(action)` / `@after(action)`: which adapter method answers a charger's CALL, and what runs after the answer.

Our own two decorators instead of `ocpp.routing`: the library's wrap every handler in one more call and are read
back through private attributes by its `ChargePoint`, which this adapter no longer uses. Here the decorator only
tags the function; `routes(cls)` collects a class's tags once, when the class is defined.

Handlers take the CALL payload as snake_case keyword arguments and return a `call_result` dataclass of the
`ocpp` library (or a camelCase dict), exactly as with the library's decorators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_ON = "__ocpp_on__"
_AFTER = "__ocpp_after__"


def on(action: str) -> Callable[[F], F]:
    """Answer CALLs of `action` (a str or the library's `Action` enum) with the decorated method."""
    def tag(fn: F) -> F:
        setattr(fn, _ON, str(action.value if hasattr(action, "value") else action))
        return fn
    return tag


def after(action: str) -> Callable[[F], F]:
    """Run the decorated method (same keyword arguments) once the answer to a CALL of `action` is sent."""
    def tag(fn: F) -> F:
        setattr(fn, _AFTER, str(action.value if hasattr(action, "value") else action))
        return fn
    return tag


@dataclass(frozen=True, slots=True)
class Route:
    on: Callable[..., Any] | None = None
    after: Callable[..., Any] | None = None


def routes(cls: type) -> dict[str, Route]:
    """action -> Route for every tagged function of `cls` and its bases (a subclass's tag wins)."""
    ons: dict[str, Callable[..., Any]] = {}
    afters: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for fn in vars(klass).values():
            if (a := getattr(fn, _ON, None)) is not None:
                ons[a] = fn
            if (a := getattr(fn, _AFTER, None)) is not None:
                afters[a] = fn
    return {a: Route(ons.get(a), afters.get(a)) for a in ons.keys() | afters.keys()}
