"""Stop a request's analysis when its client disconnects.

Endpoints are sync functions run in the threadpool, so they cannot await ``receive()`` to see
an ``http.disconnect``. This pure ASGI middleware does it for them: once the request body has
been read, it keeps listening, and on ``http.disconnect`` sets a ``threading.Event`` bound with
:func:`guard.detection.executor.cancel_when`; the analysis executor polls that event (the
threadpool copies context variables into its threads) and stops the job, queued or running.

Without it a client that gave up would still hold a worker for the whole time budget, and an
attacker could queue work, disconnect and queue again.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from guard.detection.executor import cancel_when

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DisconnectMiddleware:
    """Set the request's cancellation event when its client goes away."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the body through, then watch ``receive`` for the client leaving."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = threading.Event()
        disconnected = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            # after the last body chunk the server's receive() only answers http.disconnect
            # (the client left, or the response is complete)
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
            except Exception:  # noqa: BLE001 - a server that cannot tell: nothing to watch
                return
            gone.set()
            disconnected.set()

        async def receive_body() -> Message:
            nonlocal watcher
            if watcher is not None:  # the body is read: the watcher owns receive() now
                await disconnected.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                disconnected.set()
            elif not message.get("more_body", False):
                watcher = asyncio.create_task(watch())
            return message

        try:
            with cancel_when(gone):
                await self.app(scope, receive_body, send)
        finally:
            if watcher is not None:  # the response is sent: nothing left to cancel
                watcher.cancel()
