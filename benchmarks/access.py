"""Who the benchmarks' clients are, for a server that checks who asks (or one that does not).

A Taskline server checks who asks by default (``TASKLINE_AUTH``): every request but
``/health`` needs ``Authorization: Bearer <token>``, WebSocket upgrades too. For a database
URL and ``auth`` on or off, :func:`prepare` migrates the database and, when auth is on,
issues an admin API token in it (as ``taskline tokens create`` does), before the server
starts. The :class:`Access` it returns holds the environment for the server process
(``TASKLINE_AUTH=true|false``, and ``TASKLINE_INSECURE=false`` so that a variable left in the
shell cannot turn the checks off behind the benchmark's back; ``TASKLINE_LIMITS=false``: the
benchmarks measure capacity, and the rate limits and connection caps would be what they
measured) and the headers every client must send (none when auth is off).

Clients started as processes of their own (the Node subscribers) get the token in their
environment as ``TASKLINE_TOKEN`` (:meth:`Access.client_environ`), not on the command line.
"""

import argparse
import asyncio
import os
from dataclasses import dataclass

import httpx

from taskline.domain.actors import Actor, Role
from taskline.service.identity import Identity
from taskline.store.database import Database

__all__ = ["AUTH_CHOICES", "Access", "add_auth_option", "auth_modes", "prepare", "prepare_sync"]

AUTH_CHOICES = ("on", "off", "both")
TOKEN_VARIABLE = "TASKLINE_TOKEN"
#: A path that needs credentials, read to check that the server checks (or does not).
_GUARDED = "/api/v1/tasks/?limit=1"


@dataclass(frozen=True)
class Access:
    """How a benchmark's server is configured and what its clients send."""

    auth: bool
    token: str | None = None

    @property
    def label(self) -> str:
        return "auth on" if self.auth else "auth off"

    @property
    def server_env(self) -> dict[str, str]:
        """The variables that turn the server's checks on or off (and its limits off)."""
        return {
            "TASKLINE_AUTH": "true" if self.auth else "false",
            "TASKLINE_INSECURE": "false",
            "TASKLINE_LIMITS": "false",
        }

    def server_environ(self) -> dict[str, str]:
        """This process's environment with :attr:`server_env`: for ``subprocess``'s ``env``."""
        return {**os.environ, **self.server_env}

    @property
    def headers(self) -> dict[str, str]:
        """The headers every request and WebSocket upgrade carries (none when auth is off)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client_environ(self) -> dict[str, str]:
        """The environment for a client process: ``TASKLINE_TOKEN`` is this token, or unset
        when auth is off (a token left in the shell is not sent)."""
        environ = {k: v for k, v in os.environ.items() if k != TOKEN_VARIABLE}
        if self.token:
            environ[TOKEN_VARIABLE] = self.token
        return environ

    def check(self, base_url: str) -> None:
        """Make sure the server at ``base_url`` checks who asks exactly when it should, and
        takes these headers; raises RuntimeError otherwise (so that "auth on" figures are
        never measured on a server that lets everyone in)."""
        with httpx.Client(base_url=base_url, timeout=10) as client:
            bare = client.get(_GUARDED).status_code
            signed = client.get(_GUARDED, headers=self.headers).status_code
        if (bare == 401) != self.auth or signed != 200:
            raise RuntimeError(
                f"server at {base_url} with {self.label}: {_GUARDED} answered {bare} without "
                f"credentials and {signed} with the benchmark's headers"
            )


async def prepare(database_url: str, auth: bool, *, name: str = "bench") -> Access:
    """Migrate the database at ``database_url``; with ``auth``, issue an admin token in it.

    Call it before the server starts (the token is then in the server's database)."""
    database = Database(database_url)
    try:
        await database.migrate()
        if not auth:
            return Access(auth=False)
        identity = Identity(database, session_ttl=3600)
        issued = await identity.issue_token(name, Role.ADMIN, actor=Actor.system(name))
        return Access(auth=True, token=issued.secret)
    finally:
        await database.dispose()


def prepare_sync(database_url: str, auth: bool, *, name: str = "bench") -> Access:
    """:func:`prepare`, for code outside an event loop."""
    return asyncio.run(prepare(database_url, auth, name=name))


def add_auth_option(parser: argparse.ArgumentParser, *, both: bool = True) -> None:
    """``--auth on|off|both`` (default ``both``), or ``--auth on|off`` (default ``on``)."""
    choices = AUTH_CHOICES if both else AUTH_CHOICES[:2]
    default = "both" if both else "on"
    what = (
        "the server checks who asks (clients send an admin token), or not; both: "
        "the same measurements with each, a fresh server each, compared as ratios"
        if both
        else "the server checks who asks (clients send an admin token), or not"
    )
    parser.add_argument("--auth", choices=choices, default=default, help=f"{what} ({default})")


def auth_modes(choice: str) -> tuple[bool, ...]:
    """``on`` -> (True,), ``off`` -> (False,), ``both`` -> (True, False)."""
    return {"on": (True,), "off": (False,), "both": (True, False)}[choice]
