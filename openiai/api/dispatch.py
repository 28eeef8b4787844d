"""One call of an action by an authenticated account: resolve, validate, run, shape.

Everything between "this account is who it says" and "these are the output fields" lives
here, so that the HTTP endpoint, ``openiai import`` and the in-process test client answer a
request through the same code:

* :func:`prepare` - the action exists in the version and is implemented, the parameters
  validate against the version's field table;
* :func:`execute` - the handler runs and its answer is cast to the declared wire types;
* :func:`dispatch` - both, for callers that have nothing to do in between.

The endpoint calls the two halves separately: it checks the rate limit between resolving and
validating, and it runs validation and the handler on different threads (a cheap request is
not queued behind inference). What is HTTP only - reading the request, authentication,
timing, the envelope - stays in :mod:`.app`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .. import actions  # noqa: F401  (registers the handlers)
from ..actions.registry import HANDLERS, Context
from ..core import timing
from ..core.errors import ApiError
from .schema import shape_response, validate_request
from .wire_schema import ACTIONS

if TYPE_CHECKING:
    from ..services import Services


@dataclass(frozen=True)
class Call:
    """A validated request for one action of one API version."""

    version: str
    action: str
    request: BaseModel


def resolve_action(version: str | None, action: str | None) -> tuple[str, str]:
    """(version, action) when both name an implemented action; else the documented error."""
    if not action:
        raise ApiError("MissingParameter", "The request is missing the Action "
                       "(X-TC-Action header or Action parameter).")
    if not version:
        raise ApiError("MissingParameter", "The request is missing the Version "
                       "(X-TC-Version header or Version parameter).")
    if version not in ACTIONS:
        raise ApiError("NoSuchVersion", f"API version `{version}` does not exist; "
                       f"supported: {', '.join(ACTIONS)}.")
    if action not in ACTIONS[version]:
        raise ApiError("InvalidAction", f"The action `{action}` does not exist in API version "
                       f"{version}.")
    # Looked up on every call (not cached): tests swap handlers in and out of the registry.
    if action not in HANDLERS:
        raise ApiError("UnsupportedOperation", f"The action `{action}` is part of the IAI API "
                       "but is not implemented by this server yet.")
    return version, action


def is_image_action(version: str, action: str) -> bool:
    """Whether the action takes an image (an ``Image*``/``Url*`` field): inference work, run
    on the image threads; the others (management, listings) have threads of their own."""
    fields = ACTIONS.get(version, {}).get(action, {}).get("in", {})
    return any(name.startswith(("Image", "Url")) for name in fields)


def prepare(version: str | None, action: str | None, params: dict | Callable[[], dict],
            admit: Callable[[str], None] | None = None) -> Call:
    """Resolve and validate. ``admit(action)`` runs in between: the rate limiter counts only
    known actions and refuses before any parsing work, which is why ``params`` may also be a
    function that parses the body on demand."""
    version, action = resolve_action(version, action)
    if admit is not None:
        admit(action)
    if callable(params):
        params = params()
    return Call(version, action, validate_request(version, action, params))


def execute(call: Call, ctx: Context) -> dict:
    """Run the handler and cast its answer to the declared output fields."""
    payload = HANDLERS[call.action](ctx, call.request)
    with timing.stage("serialise"):
        return shape_response(call.version, call.action, payload or {})


def dispatch(services: "Services", account_id: int, version: str, action: str, params: dict,
             request_id: str | None = None) -> dict:
    """The output fields of ``action`` called with ``params``; raises :class:`ApiError`."""
    call = prepare(version, action, params)
    ctx = Context(account_id=account_id, version=call.version,
                  request_id=request_id or str(uuid.uuid4()), services=services)
    return execute(call, ctx)
