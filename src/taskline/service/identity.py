"""People, API tokens, browser sessions and sign-in links: who a secret stands for.

:meth:`Identity.authenticate` turns a presented secret (a bearer token or a session cookie)
into the :class:`Actor` it stands for, with its role, or ``None``. Found credentials are
remembered for ``cache_ttl`` seconds (a dictionary lookup per request instead of a query), so
a token revoked by another process (``taskline tokens revoke``) stops working within that
time; revoked here, at once. A credential's last use is written at most once a minute.

Passwords are hashed with argon2id (``argon2-cffi``), off the event loop. Managing people and
tokens takes the ``admin`` role (:data:`~taskline.domain.access.Action.MANAGE_ACCESS`).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from taskline.domain.access import Action, require
from taskline.domain.actors import Actor, Role
from taskline.domain.errors import ConflictError, InvalidInputError, NotAuthenticatedError
from taskline.domain.identities import (
    Credential,
    CredentialKind,
    IssuedCredential,
    User,
    hash_secret,
    new_secret,
)
from taskline.domain.ids import ID_PATTERN, new_id
from taskline.domain.models import utc_now
from taskline.store.database import Database
from taskline.store.identities import IdentityStore
from taskline.store.tables import CredentialRow, UserRow

__all__ = ["FIRST_ADMIN", "Identity"]

logger = logging.getLogger("taskline.identity")

#: The account created at the first start of a server that has nobody yet.
FIRST_ADMIN = "admin"
_LINK_TTL = timedelta(hours=24)
_TOUCH_EVERY = timedelta(minutes=1)
_REFUSED = "the token or session is unknown, expired or revoked; sign in again"
_CACHE_LIMIT = 10_000


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        disabled=row.disabled,
        has_password=row.password_hash is not None,
        created_at=row.created_at,
    )


def _credential(row: CredentialRow) -> Credential:
    return Credential.model_validate(row)


def _issued(row: CredentialRow, secret: str) -> IssuedCredential:
    return IssuedCredential(**_credential(row).model_dump(), secret=secret)


def _actor_of(row: CredentialRow, user: UserRow | None) -> Actor:
    if user is not None:
        return Actor.person(user.name, Role(user.role))
    if row.agent_id is not None:
        return Actor.agent(row.agent_id, Role.AGENT)
    return Actor.token(row.id, Role(row.role))


class Identity:
    """People and credentials, and who a secret stands for (see the module docstring).

    Args:
        session_ttl: seconds a browser sign-in lasts.
        cache_ttl: seconds a found credential is trusted without asking the database.
    """

    def __init__(
        self,
        database: Database,
        *,
        session_ttl: float,
        cache_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.session_ttl = timedelta(seconds=session_ttl)
        self.cache_ttl = cache_ttl
        self._clock = clock
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None
        # secret hash -> (actor, trusted until (clock), credential id)
        self._known: dict[str, tuple[Actor, float, str]] = {}
        # secrets that live only in this process (the demo agent's), never stored
        self._ephemeral: dict[str, Actor] = {}

    # --- who is asking -----------------------------------------------------------------------

    async def authenticate(self, secret: str) -> Actor | None:
        """The actor a bearer token or session cookie stands for, or None when it is
        unknown, expired, revoked, a sign-in link, or its person is disabled."""
        secret_hash = hash_secret(secret)
        now_clock = self._clock()
        known = self._known.get(secret_hash)
        if known is not None and known[1] > now_clock:
            return known[0]
        ephemeral = self._ephemeral.get(secret_hash)
        if ephemeral is not None:
            return ephemeral
        async with self.database.write() as session:
            store = IdentityStore(session)
            found = await store.credential_by_hash(secret_hash)
            if found is None:
                return None
            row, user = found
            now = utc_now()
            if (
                row.kind == CredentialKind.LINK
                or row.revoked_at is not None
                or (row.expires_at is not None and row.expires_at <= now)
                or (user is not None and user.disabled)
            ):
                return None
            if row.last_used_at is None or row.last_used_at < now - _TOUCH_EVERY:
                await store.touch(row.id, now)
            actor = _actor_of(row, user)
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        self._known[secret_hash] = (actor, now_clock + self.cache_ttl, row.id)
        return actor

    def issue_ephemeral(self, actor: Actor) -> str:
        """A secret for ``actor`` valid in this process until it stops (never stored)."""
        secret = new_secret()
        self._ephemeral[hash_secret(secret)] = actor
        return secret

    # --- signing in ------------------------------------------------------------------------------

    async def sign_in(self, name: str, password: str) -> IssuedCredential:
        """A browser session for the person, if the password is theirs.

        Raises:
            NotAuthenticatedError: unknown name, wrong password, no password set, disabled.
        """
        user = await self._check_password(name, password)
        return await self._issue(
            CredentialKind.SESSION,
            "browser session",
            Role(user.role),
            user_id=user.id,
            expires_at=utc_now() + self.session_ttl,
        )

    async def personal_token(
        self, name: str, password: str, *, label: str | None = None
    ) -> IssuedCredential:
        """An API token acting as the person (``taskline login``), if the password is theirs.

        Raises:
            NotAuthenticatedError: as :meth:`sign_in`.
        """
        user = await self._check_password(name, password)
        return await self._issue(
            CredentialKind.TOKEN, label or f"{user.name}'s token", Role(user.role), user_id=user.id
        )

    async def redeem_link(self, secret: str) -> IssuedCredential:
        """Use a one-time sign-in link: it is revoked and a browser session is issued.

        Raises:
            NotAuthenticatedError: unknown, used, expired, or its person is disabled.
        """
        async with self.database.write() as session:
            store = IdentityStore(session)
            found = await store.credential_by_hash(hash_secret(secret))
            now = utc_now()
            user = found[1] if found is not None else None
            if found is None or found[0].kind != CredentialKind.LINK or user is None:
                raise NotAuthenticatedError("this sign-in link is not valid")
            row = found[0]
            if row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
                raise NotAuthenticatedError(
                    "this sign-in link was used already or has expired; "
                    "ask for a new one: taskline users link NAME"
                )
            if user.disabled:
                raise NotAuthenticatedError(f"{user.name} is disabled")
            await store.revoke(row.id, now)
            user_id, role = user.id, Role(user.role)
        return await self._issue(
            CredentialKind.SESSION,
            "browser session",
            role,
            user_id=user_id,
            expires_at=utc_now() + self.session_ttl,
        )

    async def sign_out(self, secret: str) -> None:
        """End the session (or revoke the token) this secret is; unknown secrets are ignored."""
        secret_hash = hash_secret(secret)
        async with self.database.write() as session:
            store = IdentityStore(session)
            found = await store.credential_by_hash(secret_hash)
            if found is not None:
                await store.revoke(found[0].id, utc_now())
        self._known.pop(secret_hash, None)

    async def sign_in_link(self, name: str, *, actor: Actor) -> str:
        """A new one-time sign-in link secret for the person (valid 24 hours)."""
        require(actor, Action.MANAGE_ACCESS)
        async with self.database.read() as session:
            user = await IdentityStore(session).user(name)
            user_id, role = user.id, Role(user.role)
        issued = await self._issue(
            CredentialKind.LINK,
            "sign-in link",
            role,
            user_id=user_id,
            expires_at=utc_now() + _LINK_TTL,
        )
        return issued.secret

    async def first_run(self) -> str | None:
        """At start-up: with nobody yet, create the admin ``admin``; while an admin without
        a password has never signed in (no live session), return a fresh one-time sign-in
        link secret for them, to print. None when people can already sign in."""
        system = Actor.system("first-run")
        try:
            async with self.database.write() as session:
                store = IdentityStore(session)
                if await store.count_users() == 0:
                    await store.add_user(
                        UserRow(
                            id=new_id("usr"),
                            name=FIRST_ADMIN,
                            role=Role.ADMIN,
                            password_hash=None,
                            disabled=False,
                            created_at=utc_now(),
                        )
                    )
                    logger.info("created the first admin, %r", FIRST_ADMIN)
        except ConflictError:  # AlreadyExistsError too
            # several processes of one deployment starting on a new database: one made it
            logger.debug("the first admin was created by another process meanwhile")
        async with self.database.read() as session:
            store = IdentityStore(session)
            now = utc_now()
            waiting = [
                user
                for user in await store.users()
                if user.role == Role.ADMIN and not user.disabled and user.password_hash is None
            ]
            for user in waiting:
                if await store.has_live_session(user.id, now):
                    return None
        if len(waiting) != 1:
            return None
        return await self.sign_in_link(waiting[0].name, actor=system)

    # --- people ----------------------------------------------------------------------------------

    async def create_user(
        self, name: str, role: Role, *, password: str | None = None, actor: Actor
    ) -> User:
        """Add a person (their password may be set later).

        Raises:
            AlreadyExistsError: the name is taken.
            InvalidInputError: an empty name or a password shorter than 8 characters.
        """
        require(actor, Action.MANAGE_ACCESS)
        name = name.strip()
        if not name or len(name) > 120 or any(c.isspace() or c == ":" for c in name):
            raise InvalidInputError("a user name is 1-120 characters, no spaces or ':'", "name")
        hashed = await self._hash(password) if password is not None else None
        async with self.database.write() as session:
            row = await IdentityStore(session).add_user(
                UserRow(
                    id=new_id("usr"),
                    name=name,
                    role=role,
                    password_hash=hashed,
                    disabled=False,
                    created_at=utc_now(),
                )
            )
            return _user(row)

    async def users(self, *, actor: Actor) -> list[User]:
        require(actor, Action.MANAGE_ACCESS)
        async with self.database.read() as session:
            return [_user(row) for row in await IdentityStore(session).users()]

    async def set_disabled(self, name: str, disabled: bool, *, actor: Actor) -> User:
        """Disable (or enable again) a person: their sessions and tokens stop working."""
        require(actor, Action.MANAGE_ACCESS)
        async with self.database.write() as session:
            row = await IdentityStore(session).user(name)
            row.disabled = disabled
            user = _user(row)
        self._known.clear()
        return user

    async def set_password(self, name: str, password: str, *, actor: Actor) -> None:
        require(actor, Action.MANAGE_ACCESS)
        hashed = await self._hash(password)
        async with self.database.write() as session:
            row = await IdentityStore(session).user(name)
            row.password_hash = hashed

    # --- tokens ----------------------------------------------------------------------------------

    async def issue_token(
        self,
        name: str,
        role: Role,
        *,
        agent_id: str | None = None,
        user: str | None = None,
        expires_in: timedelta | None = None,
        actor: Actor,
    ) -> IssuedCredential:
        """A new API token; its secret is in the result and nowhere else.

        ``role`` ``agent`` needs ``agent_id`` (the one agent it may act as); ``user`` makes a
        personal token that acts as that person, with their role.

        Raises:
            InvalidInputError: an agent token without an agent id (or the reverse).
            NotFoundError: no such user.
        """
        require(actor, Action.MANAGE_ACCESS)
        if (role == Role.AGENT) != (agent_id is not None):
            raise InvalidInputError("an agent token needs --agent, and only agent tokens take one")
        if agent_id is not None and not (
            ID_PATTERN.match(agent_id) and agent_id.startswith("agent_")
        ):
            raise InvalidInputError("agent id must look like agent_abc123", "agent_id")
        user_id = None
        if user is not None:
            async with self.database.read() as session:
                row = await IdentityStore(session).user(user)
                user_id, role = row.id, Role(row.role)
        expires_at = utc_now() + expires_in if expires_in is not None else None
        return await self._issue(
            CredentialKind.TOKEN,
            name,
            role,
            user_id=user_id,
            agent_id=agent_id,
            expires_at=expires_at,
        )

    async def tokens(self, *, actor: Actor) -> list[Credential]:
        require(actor, Action.MANAGE_ACCESS)
        async with self.database.read() as session:
            rows = await IdentityStore(session).credentials(CredentialKind.TOKEN)
            return [_credential(row) for row in rows]

    async def revoke(self, token_id: str, *, actor: Actor) -> Credential:
        """Revoke a token (it stops working at once here, within ``cache_ttl`` elsewhere)."""
        require(actor, Action.MANAGE_ACCESS)
        async with self.database.write() as session:
            store = IdentityStore(session)
            await store.credential(token_id)
            await store.revoke(token_id, utc_now())
            revoked = _credential(await store.credential(token_id))
        self._known = {key: value for key, value in self._known.items() if value[2] != token_id}
        return revoked

    # --- internals -------------------------------------------------------------------------------

    async def _issue(
        self,
        kind: CredentialKind,
        name: str,
        role: Role,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> IssuedCredential:
        secret = new_secret()
        async with self.database.write() as session:
            row = await IdentityStore(session).add_credential(
                CredentialRow(
                    id=new_id("tok" if kind == CredentialKind.TOKEN else kind.value[:4]),
                    kind=kind,
                    secret_hash=hash_secret(secret),
                    name=name[:200],
                    role=role,
                    user_id=user_id,
                    agent_id=agent_id,
                    created_at=utc_now(),
                    expires_at=expires_at,
                )
            )
            return _issued(row, secret)

    async def _hash(self, password: str) -> str:
        if len(password) < 8:
            raise InvalidInputError("a password has at least 8 characters", "password")
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _check_password(self, name: str, password: str) -> UserRow:
        async with self.database.read() as session:
            user = await IdentityStore(session).user_named(name)
        refused = NotAuthenticatedError("wrong user name or password")
        if user is None or user.password_hash is None or user.disabled:
            # spend the same time as a real check, so names cannot be probed by timing
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self._hasher.hash, "nobody's password")
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            raise refused
        if not await asyncio.to_thread(self._verify, user.password_hash, password):
            raise refused
        return user

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
