"""Shared objects the routes receive from the application state (no globals).

The providers are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread
pool, which would cost every request a thread hand-off just to read ``app.state``.
"""

from typing import Annotated

from fastapi import Depends, Request

from taskline.bus import EventBus
from taskline.settings import Settings
from taskline.store.database import Database

__all__ = ["BusDep", "DatabaseDep", "SettingsDep"]


async def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


BusDep = Annotated[EventBus, Depends(_bus)]
DatabaseDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
