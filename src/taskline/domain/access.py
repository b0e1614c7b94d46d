"""Who may do what: roles, the actions they allow, and the one check every change makes.

The application layer (``taskline.service``) calls :func:`require` before each change and
:func:`require_on_task` where an agent's reach depends on the task; nothing else decides.

==========  ==================================================================================
role        may
==========  ==================================================================================
``admin``   everything: people and tokens, import with ``replace``, connection status,
            webhooks
``member``  a person's work: tasks, sections, subtasks, messages, pause/resume/cancel, agents,
            claiming for a named agent (and renewing and releasing leases), answering
            requests (questions, approvals), imports that add,
            starting the built-in agent, messaging clients, the MCP server
``agent``   read; claim pending tasks for itself (and renew and release its leases); publish
            events, open requests (and cancel its own), post messages and edit the checklist
            on the tasks assigned to its agent id; connect and register only as that agent;
            the MCP server
``viewer``  read only (not the MCP server: every one of its tools acts on tasks)
==========  ==================================================================================

The server's own parts act as ``system`` actors with no role and are never refused.
"""

from collections.abc import Sequence
from enum import StrEnum

from taskline.domain.actors import Actor, ActorKind, Role
from taskline.domain.errors import ForbiddenError, NotAuthenticatedError

__all__ = [
    "ROLE_ACTIONS",
    "Action",
    "Role",
    "allows",
    "require",
    "require_agent_connection",
    "require_on_task",
    "require_self",
]


class Action(StrEnum):
    READ = "read"  #: tasks, logs, streams, agents, exports
    EDIT_TASKS = "edit_tasks"  #: create, change and delete tasks
    EDIT_CHECKLIST = "edit_checklist"  #: sections and subtasks
    PUBLISH = "publish"  #: append events to a task's log
    POST_MESSAGES = "post_messages"  #: messages on a task
    CONTROL = "control"  #: pause, resume, cancel
    CLAIM = "claim"  #: claim a pending task for an agent; renew and release its lease
    #: answer (and cancel) requests agents make of people: questions, approvals
    ANSWER_REQUESTS = "answer_requests"
    MANAGE_AGENTS = "manage_agents"  #: the agent registry
    IMPORT = "import"  #: import tasks that are new (modes skip and fail)
    IMPORT_REPLACE = "import_replace"  #: import that overwrites tasks by id
    START_RUNS = "start_runs"  #: AG-UI runs of the built-in agent (it reads the server's disk)
    MESSAGE_CLIENTS = "message_clients"  #: personal messages to a connected client
    VIEW_CONNECTIONS = "view_connections"  #: who is connected (ids, addresses, user agents)
    MANAGE_ACCESS = "manage_access"  #: people and tokens
    #: the MCP endpoint (``/mcp``) and ``taskline mcp``: a way for agents to work on tasks, so
    #: the roles that may publish; each tool then checks its own action like the REST route
    USE_MCP = "use_mcp"
    MANAGE_WEBHOOKS = "manage_webhooks"  #: outgoing webhooks and their delivery log


_MEMBER = frozenset(Action) - {
    Action.IMPORT_REPLACE,
    Action.VIEW_CONNECTIONS,
    Action.MANAGE_ACCESS,
    Action.MANAGE_WEBHOOKS,
}

#: What each role may do. An agent's task-scoped actions are further limited to the tasks
#: assigned to it (:func:`require_on_task`).
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.MEMBER: _MEMBER,
    Role.AGENT: frozenset(
        {
            Action.READ,
            Action.CLAIM,
            Action.PUBLISH,
            Action.POST_MESSAGES,
            Action.EDIT_CHECKLIST,
            Action.MANAGE_AGENTS,
            Action.USE_MCP,
        }
    ),
    Role.VIEWER: frozenset({Action.READ}),
}


def allows(actor: Actor, action: Action) -> bool:
    """True when ``actor``'s role (or being the server itself) allows ``action``."""
    if actor.kind == ActorKind.SYSTEM:
        return True
    return actor.role is not None and action in ROLE_ACTIONS[actor.role]


def require(actor: Actor, action: Action) -> None:
    """Raise unless ``actor`` may do ``action``.

    Raises:
        NotAuthenticatedError: nobody signed the request (and the server checks who asks).
        ForbiddenError: the actor's role does not allow ``action``.
    """
    if allows(actor, action):
        return
    if actor.role is None:
        raise NotAuthenticatedError("sign in, or send an API token: Authorization: Bearer <token>")
    raise ForbiddenError(f"the {actor.role} role may not {_WORDS[action]}")


def require_on_task(actor: Actor, action: Action, task_id: str, workers: Sequence[str]) -> None:
    """:func:`require`, and for the ``agent`` role: its agent must work on the task
    (``workers``: the task's assigned agent and the agents whose current task it is).

    Raises:
        ForbiddenError: an agent acting on a task that is not its own.
    """
    require(actor, action)
    if actor.role != Role.AGENT or actor.id in workers:
        return
    holder = f"assigned to {workers[0]}" if workers else "not assigned to any agent"
    raise ForbiddenError(
        f"task {task_id!r} is {holder}; {actor} may {_WORDS[action]} only on its own tasks"
    )


def require_self(actor: Actor, action: Action, agent_id: str) -> None:
    """:func:`require`, and for the ``agent`` role: ``agent_id`` must be its own.

    Raises:
        ForbiddenError: an agent acting for another agent id.
    """
    require(actor, action)
    if actor.role == Role.AGENT and actor.id != agent_id:
        raise ForbiddenError(f"{actor} may act only as itself, not as {agent_id}")


def require_agent_connection(actor: Actor, agent_id: str) -> None:
    """Who may connect as agent ``agent_id``: its own agent token, an admin, the server.

    Raises:
        NotAuthenticatedError: nobody signed the request.
        ForbiddenError: another agent's token, or a person who is not an admin.
    """
    require(actor, Action.READ)
    if actor.kind == ActorKind.SYSTEM or actor.role == Role.ADMIN:
        return
    if actor.role != Role.AGENT:
        raise ForbiddenError(
            f"only {agent_id}'s agent token (or an admin) may connect as {agent_id}; "
            f"create one: taskline tokens create NAME --role agent --agent {agent_id}"
        )
    if actor.id != agent_id:
        raise ForbiddenError(f"this token is {actor}'s; it may not connect as {agent_id}")


_WORDS = {
    Action.READ: "read",
    Action.EDIT_TASKS: "create, change or delete tasks",
    Action.EDIT_CHECKLIST: "change sections and subtasks",
    Action.PUBLISH: "publish events",
    Action.POST_MESSAGES: "post messages",
    Action.CONTROL: "pause, resume or cancel tasks",
    Action.CLAIM: "claim tasks (or renew and release leases)",
    Action.ANSWER_REQUESTS: "answer requests (questions and approvals are for people)",
    Action.MANAGE_AGENTS: "change the agent registry",
    Action.IMPORT: "import tasks",
    Action.IMPORT_REPLACE: "import with mode=replace (it overwrites tasks; admin only)",
    Action.START_RUNS: "start the built-in agent",
    Action.MESSAGE_CLIENTS: "message clients",
    Action.VIEW_CONNECTIONS: "see the connection status (admin only)",
    Action.MANAGE_ACCESS: "manage people and tokens (admin only)",
    Action.USE_MCP: "use the MCP server (its tools change tasks)",
    Action.MANAGE_WEBHOOKS: "manage webhooks (admin only)",
}
