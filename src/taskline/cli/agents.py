"""``taskline agents ...``: the agents registered with the server."""

import click

from taskline.cli.context import open_client
from taskline.cli.output import agent_table, echo_json, stdout
from taskline.domain.status import AgentStatus

__all__ = ["agents"]


@click.group()
def agents() -> None:
    """Inspect the agents registered with the server."""


@agents.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in AgentStatus], case_sensitive=False),
    help="Only agents in this status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
def list_agents(status: str | None, as_json: bool) -> None:
    """List agents by name."""
    found = open_client().list_agents(status=status.lower() if status else None)
    if as_json:
        echo_json(found)
    else:
        stdout().print(agent_table(found))
