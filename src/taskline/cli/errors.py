"""Exit codes and the one-line error reports of the CLI.

Every failure ends as a :class:`CliError`: one ``error: ...`` line on stderr (plus indented
hint lines when there is more to say) and an exit code a script can branch on. Click's own
usage errors keep click's format and exit code 2.
"""

from enum import IntEnum
from typing import IO, Any

import click

from taskline.sdk import (
    ApiError,
    Conflict,
    InvalidRequest,
    NotFound,
    ServerUnreachableError,
    TasklineAuthError,
    TasklineClientError,
)

__all__ = ["SIGN_IN_HINT", "CliError", "ExitCode", "auth_error", "from_client_error"]


class ExitCode(IntEnum):
    """Process exit statuses of ``taskline``."""

    OK = 0
    ERROR = 1  #: an API error without a more specific code, or a local failure
    USAGE = 2  #: bad command line (click's own code)
    UNREACHABLE = 3  #: no answer from the server
    NOT_FOUND = 4  #: 404
    INVALID_INPUT = 5  #: 400, 413, 422
    CONFLICT = 6  #: 409, e.g. a status transition the state machine refuses
    AUTH = 7  #: 401, 403: not signed in (no token, or a refused one) or not allowed


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` on stderr, exiting with ``exit_code``."""

    def __init__(
        self, message: str, exit_code: int = ExitCode.ERROR, hints: list[str] | None = None
    ) -> None:
        super().__init__(message)
        # click declares exit_code a class variable; ours varies with the failure.
        self.exit_code = int(exit_code)  # type: ignore[misc]
        self.hints = hints or []

    def show(self, file: IO[Any] | None = None) -> None:
        lines = [f"error: {self.message}", *(f"  {hint}" for hint in self.hints)]
        for line in lines:
            click.echo(line, file=file, err=file is None)


#: How to give the CLI a token, for the message of a 401.
SIGN_IN_HINT = "run 'taskline login', or pass --token (or set TASKLINE_TOKEN)"


def auth_error(exc: TasklineAuthError, url: str | None = None) -> CliError:
    """The one-line report of a 401 (with how to fix it) or a 403 (what is not allowed)."""
    if exc.status == 401:
        where = f" to {url}" if url else ""
        fix = (
            "the token was refused: run 'taskline login' again, or pass another --token "
            "(or TASKLINE_TOKEN)"
            if exc.token_sent
            else SIGN_IN_HINT
        )
        return CliError(f"not signed in{where}: {exc.detail} (401) — {fix}", ExitCode.AUTH)
    return CliError(f"not allowed: {exc.detail} ({exc.status})", ExitCode.AUTH)


def from_client_error(exc: TasklineClientError, url: str | None = None) -> CliError:
    """Translate an SDK error into the report and exit code the CLI promises.

    ``url`` (the server's) is named in the report of a 401.
    """
    if isinstance(exc, TasklineAuthError):
        return auth_error(exc, url)
    if isinstance(exc, ServerUnreachableError):
        if exc.timed_out:
            return CliError(
                f"the Taskline server at {exc.url} did not answer in time "
                "(raise --timeout if it is busy)",
                ExitCode.UNREACHABLE,
            )
        return CliError(
            f"cannot reach the Taskline server at {exc.url} — is it running? (taskline serve)",
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, ApiError):
        code = ExitCode.ERROR
        if isinstance(exc, NotFound):
            code = ExitCode.NOT_FOUND
        elif isinstance(exc, InvalidRequest):
            code = ExitCode.INVALID_INPUT
        elif isinstance(exc, Conflict):
            code = ExitCode.CONFLICT
        # One error is already in the detail; list them all when there are several.
        hints = [f"{e['field']}: {e['message']}" for e in exc.errors] if len(exc.errors) > 1 else []
        return CliError(f"{exc.detail} ({exc.status})", code, hints)
    return CliError(str(exc), ExitCode.ERROR)
