"""``taskline webhooks ...``: outgoing webhooks (admins): list, add, remove, test, and a
webhook's delivery log."""

import time
from typing import Any

import click
from rich.table import Table

from taskline.cli.context import open_client
from taskline.cli.output import echo_json, stdout

__all__ = ["webhooks"]

_FORMATS = ["standard", "slack", "discord"]
#: Seconds ``test`` waits for the first attempt's outcome (a receiver may take its time).
_TEST_WAIT = 30.0
_STATUSES = ["pending", "sending", "delivered", "failed"]


@click.group()
def webhooks() -> None:
    """Manage outgoing webhooks (admins only)."""


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
def list_webhooks(as_json: bool) -> None:
    """List the webhooks."""
    found = open_client().list_webhooks()
    if as_json:
        echo_json({"webhooks": found})
        return
    if not found:
        stdout().print("No webhooks. Add one: taskline webhooks add URL")
        return
    table = Table("id", "url", "events", "format", "enabled")
    for hook in found:
        table.add_row(
            hook["id"],
            hook["url"],
            ", ".join(hook["events"]),
            hook["format"],
            "yes" if hook["enabled"] else "no",
        )
    stdout().print(table)


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="An event type or pattern (task_completed, request.*, lease.expired); repeat it. "
    "Default: every event (*).",
)
@click.option("--format", "format_", type=click.Choice(_FORMATS), default="standard")
@click.option("--secret", help="A whsec_... signing secret (default: a new one).")
@click.option("--description", default="", help="A note for people.")
@click.option("--disabled", is_flag=True, help="Add it without sending anything yet.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
def add_webhook(
    url: str,
    events: tuple[str, ...],
    format_: str,
    secret: str | None,
    description: str,
    disabled: bool,
    as_json: bool,
) -> None:
    """Add a webhook that POSTs events to URL; prints its signing secret (shown once)."""
    fields: dict[str, Any] = {
        "events": list(events) or ["*"],
        "format": format_,
        "description": description,
        "enabled": not disabled,
    }
    if secret is not None:
        fields["secret"] = secret
    made = open_client().create_webhook(url, **fields)
    if as_json:
        echo_json(made)
        return
    stdout().print(f"added {made['id']}  {made['url']}  ({', '.join(made['events'])})")
    click.echo(f"signing secret (shown only now): {made['secret']}")


@webhooks.command("remove")
@click.argument("webhook_id")
def remove_webhook(webhook_id: str) -> None:
    """Delete a webhook and its delivery log."""
    open_client().delete_webhook(webhook_id)
    stdout().print(f"removed {webhook_id}")


@webhooks.command("test")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
def test_webhook(webhook_id: str, as_json: bool) -> None:
    """Send a test delivery and say how it went (exit 1 if it was not delivered)."""
    client = open_client()
    delivery = client.test_webhook(webhook_id)
    deadline = time.monotonic() + _TEST_WAIT
    while not _attempted(delivery) and time.monotonic() < deadline:
        time.sleep(0.2)  # the server answers after a second; the attempt may take longer
        found = [d for d in client.webhook_deliveries(webhook_id) if d["id"] == delivery["id"]]
        delivery = found[0] if found else delivery
    if as_json:
        echo_json(delivery)
    else:
        stdout().print(_line(delivery))
    if delivery["status"] != "delivered":
        raise SystemExit(1)


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--status", type=click.Choice(_STATUSES), help="Only deliveries in this status.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
def list_deliveries(webhook_id: str, status: str | None, limit: int, as_json: bool) -> None:
    """A webhook's delivery log, newest first."""
    found = open_client().webhook_deliveries(webhook_id, status=status, limit=limit)
    if as_json:
        echo_json({"deliveries": found})
        return
    if not found:
        stdout().print("No deliveries yet.")
    for delivery in found:
        stdout().print(_line(delivery))


def _line(delivery: dict[str, Any]) -> str:
    """``msg_x  task_completed  delivered  attempts 1  HTTP 200`` (and the error, the next
    attempt when one is due)."""
    parts = [delivery["id"], delivery["event_type"], delivery["status"]]
    parts.append(f"attempts {delivery['attempts']}")
    if delivery.get("response_status") is not None:
        parts.append(f"HTTP {delivery['response_status']}")
    if delivery.get("error"):
        parts.append(str(delivery["error"]))
    if delivery.get("status") == "pending" and delivery.get("next_attempt_at"):
        parts.append(f"next attempt {delivery['next_attempt_at']}")
    return "  ".join(parts)


def _attempted(delivery: dict[str, Any]) -> bool:
    """Whether the delivery's first attempt has an outcome."""
    status = delivery["status"]
    return status in {"delivered", "failed"} or (status == "pending" and delivery["attempts"] > 0)
