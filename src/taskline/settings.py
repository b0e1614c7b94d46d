"""The one typed settings object. Only this module reads the environment (``TASKLINE_*``)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./taskline.db"


class Settings(BaseSettings):
    """Server configuration, frozen once built.

    Every field can be set with an environment variable ``TASKLINE_<FIELD>`` (for example
    ``TASKLINE_DATABASE_URL``); CLI flags override the environment.
    """

    model_config = SettingsConfigDict(env_prefix="TASKLINE_", frozen=True, extra="ignore")

    # --- storage
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://...",
    )
    migrate_on_start: bool = Field(default=True, description="Apply migrations at start-up.")
    # --- HTTP server
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on.")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger request bodies are refused with 413."
    )
    cors_origins: tuple[str, ...] = Field(
        default=(), description="Origins allowed to call the API from a browser (CORS)."
    )
    log_level: str = Field(default="info", description="uvicorn log level.")
    # --- demo
    seed_demo: bool = Field(
        default=False, description="Create sample tasks at start-up when the board is empty."
    )
