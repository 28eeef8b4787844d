"""The HTTP/1.1 connection handling under the app: uvicorn's h11 protocol with read deadlines,
a connection cap, and the IAI envelope for a request head too large to parse.

uvicorn arms no timer until a connection has answered one request, so a client that connects
and sends nothing, or trickles its head a byte at a time, holds a socket and a parser for
ever; a few hundred of them exhaust the server's file descriptors. Here every request has two
deadlines: its head must arrive within ``header_timeout`` of the connection becoming idle,
and its body within ``body_timeout`` after the head. A connection past its deadline is closed
(a client that slow is not reading an answer either). Past ``max_connections`` open
connections a new one is closed at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..core.errors import too_large

log = logging.getLogger("openiai.api")

# h11 buffers at most this much of a request head (request line + headers); uvicorn's 16 KB
# default is below the API's 32 KB GET query, and anything up to here gets a JSON answer.
MAX_HEAD_BYTES = 1024 * 1024


def protocol_class(*, header_timeout: float, body_timeout: float,
                   max_connections: int) -> type[H11Protocol]:
    """An H11Protocol subclass with these limits, for ``uvicorn.run(http=...)``."""

    class IaiH11Protocol(_DeadlineProtocol):
        HEADER_TIMEOUT = header_timeout
        BODY_TIMEOUT = body_timeout
        MAX_CONNECTIONS = max_connections

    return IaiH11Protocol


class _DeadlineProtocol(H11Protocol):
    HEADER_TIMEOUT = 10.0
    BODY_TIMEOUT = 60.0
    MAX_CONNECTIONS = 1000

    _deadline: asyncio.TimerHandle | None = None
    _phase: str | None = None  # "head", "body", or None while no request is being read

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.MAX_CONNECTIONS:
            log.warning("connection refused: %d open connections (limit %d)",
                        len(self.connections) - 1, self.MAX_CONNECTIONS)
            transport.close()
            return
        self._arm("head", self.HEADER_TIMEOUT)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._phase == "head":
            self._arm("body", self.BODY_TIMEOUT)
        elif state not in (h11.IDLE, h11.SEND_BODY):  # the request is in (or the peer is gone)
            self._disarm()

    def on_response_complete(self) -> None:
        # Armed before the parent looks at pipelined data, which may already hold the next
        # request head (handle_events then advances or clears this deadline).
        if not self.transport.is_closing():
            self._arm("head", self.HEADER_TIMEOUT)
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request. A head over MAX_HEAD_BYTES is an API request that is too
        large, and gets the IAI envelope; anything else is not HTTP, and keeps the 400."""
        buffered, _closed = self.conn.trailing_data
        if len(buffered) <= self.conn._max_incomplete_event_size:
            super().send_400_response(msg)
            return
        err = too_large(f"The request head (request line and headers) exceeds "
                        f"{MAX_HEAD_BYTES // 1024} KB; a GET query may carry at most 32 KB.")
        body = json.dumps({"Response": {"Error": {"Code": err.code, "Message": err.message},
                                        "RequestId": str(uuid.uuid4())}}).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() +
                             b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.close()

    # ---- deadlines -------------------------------------------------------------------------
    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        if seconds > 0:
            self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expired(self) -> None:
        phase, self._deadline = self._phase, None
        if phase is None or self.transport.is_closing():
            return
        log.info("closing a connection that sent no complete request %s in time", phase)
        self.transport.close()
        # The app, if it is waiting for the body, sees a disconnect (ClientDisconnect).
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
