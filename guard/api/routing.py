r"""JSON request bodies decoded strictly, before any model or service sees them.

``json.loads`` accepts what no later step can handle: a lone UTF-16 surrogate (``"\ud800"``)
decodes to a Python string that cannot be encoded again (the database, the NLP pipeline and
the response encoder all fail on it), nesting deep enough to exhaust the interpreter's stack,
and bytes that are not UTF-8. Each is refused here with a 422 that names where it is, so
that no request is half-processed before failing with a 500.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from guard.api.problems import BodyRejectedError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

#: Default nesting limit when the app's settings are not at hand.
DEFAULT_MAX_JSON_DEPTH = 64
_SURROGATE_ESCAPES = (b"\\ud", b"\\uD")


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_json(
    value: Any,  # noqa: ANN401 - any decoded JSON
    *,
    max_depth: int,
    surrogates: bool = True,
) -> None:
    """Refuse nesting over ``max_depth`` and lone surrogates, naming where they are.

    The body object is level 0 and the values of its fields level 1, so a field holding a
    document may nest ``max_depth`` levels (``[]`` is one level).

    Iterative, so that the check itself cannot exhaust the stack.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ("body",))]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, dict | list) and len(loc) - 1 > max_depth:
            raise BodyRejectedError(
                422,
                slug="invalid-input",
                loc=loc[:2],
                problem=f"JSON nested more than {max_depth} levels deep (GUARD_MAX_JSON_DEPTH)",
            )
        if isinstance(node, dict):
            for key, child in node.items():
                if surrogates and _has_surrogate(key):
                    raise _surrogate_error((*loc, key), in_key=True)
                stack.append((child, (*loc, key)))
        elif isinstance(node, list):
            stack.extend((child, (*loc, index)) for index, child in enumerate(node))
        elif surrogates and isinstance(node, str) and _has_surrogate(node):
            raise _surrogate_error(loc, in_key=False)


def _surrogate_error(loc: tuple[str | int, ...], *, in_key: bool) -> BodyRejectedError:
    where = "an object key" if in_key else "the string"
    return BodyRejectedError(
        422,
        slug="invalid-input",
        loc=loc,
        problem=(
            f"{where} holds a lone UTF-16 surrogate (\\ud800-\\udfff escape without its pair), "
            "which is not valid Unicode"
        ),
    )


def decode_json_body(body: bytes, *, max_depth: int) -> Any:  # noqa: ANN401 - JSON
    """Decode a request body as strict UTF-8 JSON, refusing what guard cannot process."""
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BodyRejectedError(
            422, slug="invalid-input", loc=("body",), problem="the body is not valid UTF-8"
        ) from None
    except RecursionError:
        raise BodyRejectedError(
            422,
            slug="invalid-input",
            loc=("body",),
            problem=f"JSON nested more than {max_depth} levels deep (GUARD_MAX_JSON_DEPTH)",
        ) from None
    check_json(
        value,
        max_depth=max_depth,
        surrogates=any(escape in body for escape in _SURROGATE_ESCAPES),
    )
    return value


class CheckedJsonRequest(Request):
    """A request whose ``json()`` is :func:`decode_json_body` under the app's depth limit."""

    async def json(self) -> Any:  # noqa: ANN401 - JSON, as Starlette's
        """The decoded body (cached, as Starlette's)."""
        if not hasattr(self, "_json"):
            services = getattr(self.app.state, "services", None)
            settings = getattr(services, "settings", None)
            limit = getattr(settings, "max_json_depth", DEFAULT_MAX_JSON_DEPTH)
            self._json = decode_json_body(await self.body(), max_depth=limit)
        return self._json


class GuardRoute(APIRoute):
    """An APIRoute whose requests decode JSON strictly (``APIRouter(route_class=GuardRoute)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a :class:`CheckedJsonRequest`."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(CheckedJsonRequest(request.scope, request.receive))

        return checked
