"""``taskline inbox``, ``answer``, ``approve``, ``reject``: the requests agents make of people.

``inbox`` lists the open requests across tasks (oldest first); the others answer one by id.
The server judges the answer (a question's choices and schema): a refused one exits with 5,
a request that is no longer open with 6.
"""

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from taskline.cli.context import open_client
from taskline.cli.errors import CliError, ExitCode
from taskline.cli.output import echo_json, stdout, when
from taskline.domain.requests import Request

__all__ = ["answer", "approve", "inbox", "reject"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")


def _json_value(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{option}: not JSON: {exc}", ExitCode.USAGE) from None


def _asks(request: Request) -> str:
    """What the request asks for, on one line."""
    if request.action is not None:
        arguments = json.dumps(request.action.arguments, ensure_ascii=False)
        return f"{request.question}  [{request.action.name} {arguments}, {request.action.risk}]"
    if request.choices:
        return f"{request.question}  [{' | '.join(request.choices)}]"
    return request.question


def _line(verb: str, request: Request) -> Text:
    line = Text(f"{verb} ")
    line.append(request.id, style="bold")
    line.append(f" ({request.status.value})")
    return line


@click.command()
@click.option("--task", "task_id", help="Only this task's requests.")
@click.option("--all", "show_all", is_flag=True, help="Every status, not only open ones.")
@_JSON
def inbox(task_id: str | None, show_all: bool, as_json: bool) -> None:
    """The requests waiting for a person (questions and approvals agents asked), oldest
    first. Answer one with ``taskline answer``, ``approve`` or ``reject``."""
    requests = open_client().list_requests(None if show_all else "open", task_id=task_id)
    if as_json:
        echo_json({"requests": [r.model_dump(mode="json") for r in requests]})
        return
    if not requests:
        stdout().print(Text("Nothing waits for an answer.", style="dim"))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ID", "Kind", "Task", "Asked by", "Asked", "Status", "Question"):
        table.add_column(name, no_wrap=name != "Question")
    for request in requests:
        table.add_row(
            Text(request.id, style="bold"),
            Text(request.kind.value),
            Text(request.task_id),
            Text(request.created_by),
            Text(when(request.created_at)),
            Text(request.status.value),
            Text(_asks(request)),
        )
    stdout().print(table)


@click.command()
@click.argument("request_id")
@click.argument("value", required=False)
@click.option("--json", "json_value", help="The answer as JSON (any value) instead of VALUE.")
@click.option("--comment", help="A note for the agent.")
@click.option("--print-json", "as_json", is_flag=True, help="Print the API's JSON.")
def answer(
    request_id: str, value: str | None, json_value: str | None, comment: str | None, as_json: bool
) -> None:
    """Answer a question: VALUE as text, or --json with any JSON value."""
    if (value is None) == (json_value is None):
        raise CliError("give the answer as VALUE or as --json JSON (one of them)", ExitCode.USAGE)
    given: Any = value if json_value is None else _json_value(json_value, "--json")
    request = open_client().answer_request(request_id, given, comment=comment)
    _show("answered", request, as_json)


@click.command()
@click.argument("request_id")
@click.option("--arguments", help="Run it with these arguments instead (a JSON object).")
@click.option("--comment", help="A note for the agent.")
@_JSON
def approve(request_id: str, arguments: str | None, comment: str | None, as_json: bool) -> None:
    """Approve an approval, as asked or with edited --arguments."""
    edited = None if arguments is None else _json_value(arguments, "--arguments")
    if edited is not None and not isinstance(edited, dict):
        raise CliError("--arguments: give a JSON object", ExitCode.USAGE)
    request = open_client().approve(request_id, arguments=edited, comment=comment)
    _show("approved", request, as_json)


@click.command()
@click.argument("request_id")
@click.option("--comment", help="Why (the agent sees it).")
@_JSON
def reject(request_id: str, comment: str | None, as_json: bool) -> None:
    """Reject an approval."""
    request = open_client().reject(request_id, comment=comment)
    _show("rejected", request, as_json)


def _show(verb: str, request: Request, as_json: bool) -> None:
    if as_json:
        echo_json(request)
    else:
        stdout().print(_line(verb, request))
