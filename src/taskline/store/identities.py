"""Reading and writing people and credentials (the caller hashes secrets and passwords)."""

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.errors import AlreadyExistsError, NotFoundError
from taskline.store.tables import CredentialRow, UserRow

__all__ = ["IdentityStore"]


class IdentityStore:
    """People and credentials inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_users(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(UserRow)) or 0)

    async def add_user(self, row: UserRow) -> UserRow:
        if await self.user_named(row.name) is not None:
            raise AlreadyExistsError("users", [row.name])
        self.session.add(row)
        await self.session.flush()
        return row

    async def user_named(self, name: str) -> UserRow | None:
        row: UserRow | None = await self.session.scalar(select(UserRow).where(UserRow.name == name))
        return row

    async def user(self, name_or_id: str) -> UserRow:
        """The user with this id or name; raises :class:`NotFoundError`."""
        row: UserRow | None = await self.session.scalar(
            select(UserRow).where((UserRow.id == name_or_id) | (UserRow.name == name_or_id))
        )
        if row is None:
            raise NotFoundError("user", name_or_id)
        return row

    async def users(self) -> list[UserRow]:
        return list(await self.session.scalars(select(UserRow).order_by(UserRow.created_at)))

    async def add_credential(self, row: CredentialRow) -> CredentialRow:
        self.session.add(row)
        await self.session.flush()
        return row

    async def credential_by_hash(
        self, secret_hash: str
    ) -> tuple[CredentialRow, UserRow | None] | None:
        """The credential with this secret hash and its person (if it is a person's)."""
        found = (
            await self.session.execute(
                select(CredentialRow, UserRow)
                .outerjoin(UserRow, UserRow.id == CredentialRow.user_id)
                .where(CredentialRow.secret_hash == secret_hash)
            )
        ).first()
        return None if found is None else (found[0], found[1])

    async def credentials(self, kind: str) -> list[CredentialRow]:
        return list(
            await self.session.scalars(
                select(CredentialRow)
                .where(CredentialRow.kind == kind)
                .order_by(CredentialRow.created_at)
            )
        )

    async def credential(self, credential_id: str) -> CredentialRow:
        row: CredentialRow | None = await self.session.get(CredentialRow, credential_id)
        if row is None:
            raise NotFoundError("token", credential_id)
        return row

    async def has_live_session(self, user_id: str, now: datetime) -> bool:
        found = await self.session.scalar(
            select(CredentialRow.id)
            .where(
                CredentialRow.user_id == user_id,
                CredentialRow.kind == "session",
                CredentialRow.revoked_at.is_(None),
                CredentialRow.expires_at > now,
            )
            .limit(1)
        )
        return found is not None

    async def revoke(self, credential_id: str, now: datetime) -> None:
        await self.session.execute(
            update(CredentialRow)
            .where(CredentialRow.id == credential_id, CredentialRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def touch(self, credential_id: str, now: datetime) -> None:
        await self.session.execute(
            update(CredentialRow).where(CredentialRow.id == credential_id).values(last_used_at=now)
        )
