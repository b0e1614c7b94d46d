"""The one typed settings object. Only this module reads the environment (``TASKLINE_*``)."""

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "retired_variables"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./taskline.db"

#: Variables earlier versions read, and what replaces each (they are ignored now).
_RETIRED = {
    "TASKLINE_OUTBOX_SIZE": "TASKLINE_OUTBOX_BYTES (a bound in bytes; slow readers catch up "
    "from the log instead of being cut off)",
}


def retired_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning line per retired ``TASKLINE_*`` variable set in ``environ``."""
    return [
        f"{name} is no longer read; use {replacement}"
        for name, replacement in _RETIRED.items()
        if name in environ
    ]


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
    require_if_match: bool = Field(
        default=False,
        description="Refuse (428) a change to a task (PUT, PATCH, DELETE, its sections and "
        "subtasks) that carries no If-Match, so no client can overwrite unseen changes.",
    )
    # --- security
    auth: bool = Field(
        default=True,
        description="Check who asks: every request but /health, the UI's files and signing in "
        "needs a session cookie or an API token (off: everyone may do everything; refused "
        "on a non-loopback address unless insecure).",
    )
    insecure: bool = Field(
        default=False,
        description="Turn off authentication and the Host and Origin checks, on any address "
        "(taskline serve --insecure). For trusted networks and experiments only.",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL people and agents reach the server at (https://... behind a "
        "TLS-terminating proxy): its host is allowed, its origin too, sign-in links use it.",
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host names accepted besides the bind address, localhost and the "
        "public URL's (DNS rebinding protection; '*' accepts any).",
    )
    allowed_origins: tuple[str, ...] = Field(
        default=(),
        description="Origins whose pages may use a signed-in browser's cookie (unsafe "
        "requests and WebSockets), besides the server's own.",
    )
    session_ttl: float = Field(
        default=14 * 86_400.0, gt=0, description="Seconds a browser sign-in lasts."
    )
    review_roots: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Folders the built-in agent may review (paths under them only; unset: "
        "the sample folder shipped with Taskline). From the environment: a JSON list, or "
        "paths separated by os.pathsep (/srv/docs:/srv/other).",
    )
    review_hidden: bool = Field(
        default=False, description="Let the built-in agent read hidden files and folders."
    )
    agent_approve: Annotated[tuple[Literal["list_files", "write_report"], ...], NoDecode] = Field(
        default=(),
        description="Steps of the built-in agent that wait for a person's approval first "
        "(AG-UI runs show them as interrupts): list_files, write_report; from the "
        "environment, comma-separated (TASKLINE_AGENT_APPROVE=write_report).",
    )
    # --- real-time delivery
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db to share live events between server processes; "
        "unset: one process, in-memory bus.",
    )
    redis_prefix: str = Field(
        default="taskline",
        min_length=1,
        max_length=100,
        description="Prefix of Taskline's Redis channels and keys: the processes of one "
        "deployment share it; deployments sharing one Redis need different ones.",
    )
    redis_down_poll: float = Field(
        default=1.0,
        gt=0,
        description="With redis_url: while this process's Redis subscription is lost (or its "
        "last publish failed), poll the log heads of the tasks it serves this often (seconds), "
        "so its viewers see other processes' events at most this late.",
    )
    presence_ttl: float = Field(
        default=30.0,
        gt=0,
        description="With redis_url: an agent whose server process dies (kill -9, a lost "
        "machine) shows offline within this many seconds; each process refreshes its agents' "
        "presence in Redis every third of it. A dead process's AG-UI runs free their threads "
        "within it too.",
    )
    heartbeat_interval: float = Field(
        default=20.0, gt=0, description="Seconds between server heartbeats on live connections."
    )
    node_stats_interval: float = Field(
        default=5.0,
        gt=0,
        description="With redis_url: seconds between two publications of this process's "
        "connection figures to Redis (the cluster view of /api/v1/websocket/status); each "
        "lives three intervals, so a dead process drops out of the view within that.",
    )
    shutdown_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a stopping server (SIGTERM) waits for requests in progress after "
        "closing its streams (1001) and its listening socket; then it ends them and exits.",
    )
    stale_after: float = Field(
        default=300.0, gt=0, description="Close a WebSocket with no client frame for this long."
    )
    outbox_bytes: int = Field(
        default=1024 * 1024,
        ge=4096,
        description="Bytes of frames a connection may have waiting; past it the subscriber "
        "catches up from the log at its own pace instead of taking live events.",
    )
    recent_events_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Bytes of the newest events kept in memory over all tasks, so catching up "
        "and resuming read them there instead of the database (0: always the database).",
    )
    write_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Close a connection (4008) that takes no bytes for this long while "
        "frames wait for it (a reader that stopped).",
    )
    flush_interval: float = Field(
        default=0.01,
        ge=0,
        le=5,
        description="Seconds between writes to each WebSocket subscriber: events committed "
        "meanwhile go out together (0: as soon as the event loop is free).",
    )
    offline_queue_size: int = Field(
        default=100, ge=1, description="Personal messages kept per offline client."
    )
    offline_queue_ttl: float = Field(
        default=86_400.0, gt=0, description="Seconds an offline client's queue is kept."
    )
    ws_max_message_bytes: int = Field(
        default=65_536, ge=1024, description="Largest client WebSocket frame (else 1009)."
    )
    max_state_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest shared state of a task (compact JSON); a snapshot or patch "
        "that would make it larger is refused with 422.",
    )
    event_retention: int | None = Field(
        default=None,
        ge=1,
        description="Keep only the newest N events per task (unset: keep everything).",
    )
    # --- claiming tasks (README "Claiming tasks")
    lease_seconds: float = Field(
        default=300.0,
        ge=1,
        description="Seconds a claimed task is held when the claim asks for no lease; any "
        "event its holder publishes renews it.",
    )
    lease_max_seconds: float = Field(
        default=3600.0,
        ge=1,
        description="The longest lease a claim or a renewal may ask for.",
    )
    lease_sweep_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between two rounds of giving back tasks whose lease ran out "
        "(claims give them back as well, so a claim never waits for a round).",
    )
    # --- questions and approvals (README "Questions and approvals")
    request_max_wait: float = Field(
        default=30.0,
        gt=0,
        le=30,
        description="The longest a long poll on a request (GET /api/v1/requests/{id}?wait=S) "
        "waits before answering with the request still open.",
    )
    request_sweep_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between two rounds of expiring requests whose expires_at passed.",
    )
    # --- outgoing webhooks (README "Webhooks")
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds one webhook request may take in all (connect, send, answer); "
        "past it the attempt failed.",
    )
    webhook_max_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Attempts of a webhook delivery before it is given up (status failed).",
    )
    webhook_backoff: float = Field(
        default=5.0,
        gt=0,
        description="Seconds before a failed webhook delivery is tried again; doubled after "
        "each further failure (5, 10, 20, ... s), up to TASKLINE_WEBHOOK_BACKOFF_MAX.",
    )
    webhook_backoff_max: float = Field(
        default=3600.0, gt=0, description="The longest wait between two attempts."
    )
    webhook_concurrency: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Webhook requests in flight at most (a slow receiver holds one of them, "
        "never the board).",
    )
    webhook_poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between two looks for events and due deliveries when nothing "
        "woke the webhook loops (they wake on every commit of this process).",
    )
    webhook_retention_days: float = Field(
        default=7.0, gt=0, description="Days delivered and failed deliveries stay in the log."
    )
    # --- limits on load (README "Security", "Limits")
    limits: bool = Field(
        default=True,
        description="Apply the rate limits, the WebSocket connection caps and the frame "
        "limit below (off: none of them; for benchmarks that measure capacity).",
    )
    limit_publish_rate: float = Field(
        default=200.0,
        ge=0,
        description="Publishes (POST .../events) per second per principal (a client IP "
        "when anonymous); more get 429 (0: no limit). With redis_url the principal's bucket "
        "is in Redis, shared by every process (each applies its own while Redis is "
        "unreachable).",
    )
    limit_publish_burst: int = Field(
        default=1000, ge=1, description="Publishes a principal may make at once."
    )
    limit_write_rate: float = Field(
        default=50.0,
        ge=0,
        description="Other unsafe requests (POST, PUT, PATCH, DELETE) per second per "
        "principal; more get 429 (0: no limit). Shared by every process with redis_url, "
        "like limit_publish_rate.",
    )
    limit_write_burst: int = Field(
        default=200, ge=1, description="Other unsafe requests a principal may make at once."
    )
    limit_ws_per_principal: int = Field(
        default=1000,
        ge=0,
        description="Open WebSockets per signed-in principal; more are closed with 1013 "
        "(0: no cap).",
    )
    limit_ws_per_ip: int = Field(
        default=10_000,
        ge=0,
        description="Open WebSockets per client IP address (an IPv6 client: per /64); more "
        "are closed with 1013 (0: no cap).",
    )
    limit_ws_total: int = Field(
        default=20_000,
        ge=0,
        description="Open WebSockets in all; more are closed with 1013 (0: no cap). "
        "taskline serve lowers it when the open-files limit cannot hold it. With redis_url "
        "these three caps count the WebSockets of every process (each counts its own while "
        "Redis is unreachable).",
    )
    limit_ws_node_ttl: float = Field(
        default=30.0,
        gt=0,
        description="With redis_url the caps above count every process's WebSockets; those "
        "of a process that dies (kill -9, a lost machine) stop counting within this many "
        "seconds. Each process renews its counts in Redis every third of it.",
    )
    limit_connections_per_ip: int = Field(
        default=12_000,
        ge=0,
        description="TCP connections (HTTP and WebSocket) one peer address may hold; more "
        "are closed as soon as accepted, before anything is read (0: no cap). Behind a "
        "reverse proxy every connection is the proxy's. taskline serve lowers it when the "
        "open-files limit is low.",
    )
    limit_ws_frame_rate: float = Field(
        default=200.0,
        ge=0,
        description="Client frames per second per WebSocket; past it an error event and "
        "close 4429 (0: no limit).",
    )
    limit_ws_frame_burst: int = Field(
        default=2000, ge=1, description="Client frames a WebSocket may send at once."
    )
    header_timeout: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a connection has to send a complete request head, from when it "
        "opens or its last response ended; then it is closed (0: no timeout).",
    )
    keep_alive_timeout: float = Field(
        default=5.0, gt=0, description="Close an idle keep-alive HTTP connection after this."
    )
    # --- demo
    seed_demo: bool = Field(
        default=False, description="Create sample tasks at start-up when the board is empty."
    )

    @field_validator("agent_approve", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """A string is a comma-separated list (empty parts dropped)."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("review_roots", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        """A string is a JSON list or an ``os.pathsep``-separated list (empty parts dropped)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"starts with '[' but is not a JSON list ({exc})") from None
        return tuple(part.strip() for part in text.split(os.pathsep) if part.strip())

    @property
    def checks_who_asks(self) -> bool:
        """True unless authentication is off (``auth=False`` or ``insecure``)."""
        return self.auth and not self.insecure
