"""Shared objects the routes receive from the application state (no globals).

The providers are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread
pool, which would cost every request a thread hand-off just to read ``app.state``.
"""

from typing import Annotated

from fastapi import Depends, Request

from taskline.api.doors import actor_of
from taskline.domain.actors import Actor
from taskline.service import Services
from taskline.settings import Settings

__all__ = ["ActorDep", "ServicesDep", "SettingsDep"]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _actor(request: Request) -> Actor:
    """Who is asking, as :class:`~taskline.api.doors.Doors` found out."""
    return actor_of(request.scope)


ActorDep = Annotated[Actor, Depends(_actor)]
ServicesDep = Annotated[Services, Depends(_services)]
SettingsDep = Annotated[Settings, Depends(_settings)]
