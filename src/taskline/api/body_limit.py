"""ASGI middleware that refuses request bodies over a size limit with 413 problem details."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskline.api.problems import problem_response

__all__ = ["BodySizeLimit"]


class _TooLarge(BaseException):
    pass


class BodySizeLimit:
    """Refuse bodies larger than ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before reading anything; a body
    sent without one (chunked) is counted as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            f"request body is larger than the limit of {self.max_bytes} bytes",
            slug="content-too-large",
            instance=scope.get("path"),
            limit=self.max_bytes,
        )
        await response(scope, receive, send)
