"""``taskline users ...`` and ``taskline tokens ...``: people and API tokens.

These run on the server's machine, against its database (like ``taskline db``): they are how
the first admin is given a password, and how tokens are made before any exist. A token is
shown once, when it is created; only its hash is kept. A token revoked here stops working on
a running server within 10 seconds.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import click

from taskline.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from taskline.service.identity import Identity

__all__ = ["tokens", "users"]

T = TypeVar("T")
_ROLES = click.Choice(["admin", "member", "agent", "viewer"])
_DATABASE = click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy async URL.  [default: TASKLINE_DATABASE_URL, else ./taskline.db]",
)


def _run(database_url: str | None, work: "Callable[[Identity], Awaitable[T]]") -> T:
    """Run ``work`` with the identity service of the database (migrated first)."""
    from taskline.cli.config import load_settings, open_database
    from taskline.domain.errors import NotFoundError, TasklineError
    from taskline.service.identity import Identity

    settings = load_settings()
    url = database_url or settings.database_url

    async def go() -> T:
        database = open_database(url)
        try:
            await database.migrate()
            return await work(Identity(database, session_ttl=settings.session_ttl))
        except NotFoundError as exc:
            raise CliError(exc.detail, ExitCode.NOT_FOUND) from None
        except TasklineError as exc:
            raise CliError(exc.detail, ExitCode.INVALID_INPUT) from None
        finally:
            await database.dispose()

    return asyncio.run(go())


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def users() -> None:
    """People who sign in (runs on the server's machine, against its database)."""


@users.command("create")
@click.argument("name")
@click.option("--role", type=_ROLES, default="member", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--no-password", is_flag=True, help="Set none now (sign in with a link).")
@_DATABASE
def create_user(
    name: str, role: str, password_stdin: bool, no_password: bool, database_url: str | None
) -> None:
    """Add a person; asks for their password unless --no-password."""
    from taskline.domain.actors import Actor, Role

    password = None if no_password else _password(password_stdin)
    user = _run(
        database_url,
        lambda identity: identity.create_user(
            name, Role(role), password=password, actor=Actor.system("cli")
        ),
    )
    click.echo(f"created {user.name} ({user.role}, {user.id})")


@users.command("list")
@_DATABASE
def list_users(database_url: str | None) -> None:
    """Everyone, with their role and whether they can sign in."""
    from taskline.domain.actors import Actor

    people = _run(database_url, lambda identity: identity.users(actor=Actor.system("cli")))
    for user in people:
        state = "disabled" if user.disabled else ("active" if user.has_password else "no password")
        click.echo(f"{user.name:<24} {user.role:<8} {state:<12} {user.id}")


@users.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the person again instead.")
@_DATABASE
def disable_user(name: str, enable: bool, database_url: str | None) -> None:
    """Stop a person signing in (their sessions and tokens stop working too)."""
    from taskline.domain.actors import Actor

    user = _run(
        database_url,
        lambda identity: identity.set_disabled(name, not enable, actor=Actor.system("cli")),
    )
    click.echo(f"{user.name} is {'disabled' if user.disabled else 'enabled'}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@_DATABASE
def set_password(name: str, password_stdin: bool, database_url: str | None) -> None:
    """Set a person's password."""
    from taskline.domain.actors import Actor

    password = _password(password_stdin)
    _run(
        database_url,
        lambda identity: identity.set_password(name, password, actor=Actor.system("cli")),
    )
    click.echo(f"the password of {name} is set")


@users.command("link")
@click.argument("name")
@click.option("--url", "base", metavar="URL", help="The server's URL for the link.")
@_DATABASE
def sign_in_link(name: str, base: str | None, database_url: str | None) -> None:
    """Print a one-time sign-in link for a person (valid 24 hours)."""
    from taskline.app import sign_in_url
    from taskline.cli.config import load_settings
    from taskline.domain.actors import Actor

    secret = _run(
        database_url, lambda identity: identity.sign_in_link(name, actor=Actor.system("cli"))
    )
    settings = load_settings(public_url=base)
    click.echo(sign_in_url(settings, secret))


@click.group()
def tokens() -> None:
    """API tokens for programs and agents (runs on the server's machine)."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=_ROLES, default="agent", show_default=True)
@click.option("--agent", "agent_id", metavar="AGENT_ID", help="The agent an agent token is for.")
@click.option("--user", metavar="NAME", help="A personal token: acts as this person.")
@click.option(
    "--expires-in",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Days until it stops working.  [default: never]",
)
@_DATABASE
def create_token(
    name: str,
    role: str,
    agent_id: str | None,
    user: str | None,
    expires_in: float | None,
    database_url: str | None,
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from taskline.domain.actors import Actor, Role

    if user is not None and role == "agent" and agent_id is None:
        role = "member"  # a personal token takes the person's role
    issued = _run(
        database_url,
        lambda identity: identity.issue_token(
            name,
            Role(role),
            agent_id=agent_id,
            user=user,
            expires_in=timedelta(days=expires_in) if expires_in else None,
            actor=Actor.system("cli"),
        ),
    )
    bound = f", agent {issued.agent_id}" if issued.agent_id else ""
    click.echo(f"created {issued.id} ({issued.role}{bound}); it is shown this once:", err=True)
    click.echo(issued.secret)


@tokens.command("list")
@_DATABASE
def list_tokens(database_url: str | None) -> None:
    """Every token: id, name, role, agent, expiry, last use, revoked."""
    from taskline.domain.actors import Actor

    found = _run(database_url, lambda identity: identity.tokens(actor=Actor.system("cli")))
    for token in found:
        used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
        state = "revoked" if token.revoked_at else "active"
        expires = token.expires_at.isoformat(timespec="seconds") if token.expires_at else "-"
        click.echo(
            f"{token.id:<16} {token.name:<24} {token.role:<7} {token.agent_id or '-':<18} "
            f"expires {expires:<20} used {used:<20} {state}"
        )


@tokens.command("revoke")
@click.argument("token_id")
@_DATABASE
def revoke_token(token_id: str, database_url: str | None) -> None:
    """Revoke a token by its id (tok_…)."""
    from taskline.domain.actors import Actor

    _run(database_url, lambda identity: identity.revoke(token_id, actor=Actor.system("cli")))
    click.echo(f"revoked {token_id}")
