"""Shared objects the routes receive from the application state (no globals)."""

from typing import Annotated

from fastapi import Depends, Request

from taskline.settings import Settings
from taskline.store.database import Database

__all__ = ["DatabaseDep", "SettingsDep"]


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
