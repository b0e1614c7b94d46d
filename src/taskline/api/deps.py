"""Shared objects the routes receive from the application state (no globals)."""

from typing import Annotated

from fastapi import Depends, Request

from taskline.bus import EventBus
from taskline.settings import Settings
from taskline.store.database import Database

__all__ = ["BusDep", "DatabaseDep", "SettingsDep"]


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


BusDep = Annotated[EventBus, Depends(_bus)]
DatabaseDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
