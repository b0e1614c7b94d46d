"""Signing in and out: the browser's session cookie, personal tokens, one-time links.

- ``POST /api/v1/auth/session`` (name and password) signs a browser in: the session cookie
  is ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` when the server is reached over HTTPS.
- ``DELETE /api/v1/auth/session`` signs it out (the session is revoked, not only forgotten).
- ``GET /api/v1/auth/me`` says who the request's credentials stand for and what they may do.
- ``POST /api/v1/auth/token`` exchanges a name and password for a personal API token
  (``taskline login``); the token is shown once.
- ``GET /auth/link?token=…`` uses a one-time sign-in link (printed at first start, or by
  ``taskline users link``) and sends the browser to the board, signed in.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from taskline.api.deps import ActorDep, ServicesDep, SettingsDep
from taskline.api.doors import SESSION_COOKIE
from taskline.api.json_body import JsonBodyRoute
from taskline.domain.access import ROLE_ACTIONS, Action
from taskline.domain.actors import Actor, ActorKind, Role
from taskline.domain.errors import NotAuthenticatedError
from taskline.domain.identities import IssuedCredential
from taskline.settings import Settings

__all__ = ["router"]

router = APIRouter(tags=["auth"], route_class=JsonBodyRoute)


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1024)


class TokenRequest(SignIn):
    name: str | None = Field(default=None, max_length=200, description="A label for the token.")


class Me(BaseModel):
    """Who the request's credentials stand for."""

    actor: str = Field(description="As recorded on events: person:ana, agent:agent_x, …")
    kind: ActorKind
    name: str | None
    role: Role | None
    actions: list[Action] = Field(description="What this actor may do.")
    auth: bool = Field(description="False when the server does not check who asks.")


class IssuedToken(BaseModel):
    id: str
    token: str = Field(description="The secret; shown this once only.")
    name: str
    role: Role
    expires_at: str | None = None


def _me(actor: Actor, settings: Settings) -> Me:
    actions = sorted(ROLE_ACTIONS[actor.role]) if actor.role else []
    return Me(
        actor=str(actor),
        kind=actor.kind,
        name=actor.id,
        role=actor.role,
        actions=actions,
        auth=settings.checks_who_asks,
    )


def _secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or (settings.public_url or "").startswith("https://")


def _set_session(
    response: Response, session: IssuedCredential, request: Request, settings: Settings
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.secret,
        max_age=int(settings.session_ttl),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings),
    )


@router.get("/api/v1/auth/me", response_model=Me, summary="Who am I")
async def me(actor: ActorDep, settings: SettingsDep) -> Me:
    """401 when the request carries no credentials (and the server checks who asks)."""
    if actor.role is None and actor.kind != ActorKind.SYSTEM:
        raise NotAuthenticatedError("not signed in")
    return _me(actor, settings)


@router.post("/api/v1/auth/session", response_model=Me, summary="Sign a browser in")
async def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    services: ServicesDep,
    settings: SettingsDep,
) -> Me:
    """Check the password and set the session cookie; 401 for a wrong name or password."""
    session = await services.identity.sign_in(body.username, body.password)
    _set_session(response, session, request, settings)
    return _me(Actor.person(body.username, session.role), settings)


@router.delete("/api/v1/auth/session", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out")
async def sign_out(request: Request, services: ServicesDep) -> Response:
    """Revoke the session the cookie carries (if any) and clear the cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        await services.identity.sign_out(secret)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.post(
    "/api/v1/auth/token",
    response_model=IssuedToken,
    status_code=status.HTTP_201_CREATED,
    summary="Get a personal API token",
)
async def personal_token(body: TokenRequest, services: ServicesDep) -> IssuedToken:
    """A token that acts as the person (with their role), for the CLI and scripts."""
    issued = await services.identity.personal_token(body.username, body.password, label=body.name)
    return IssuedToken(
        id=issued.id,
        token=issued.secret,
        name=issued.name,
        role=issued.role,
        expires_at=issued.expires_at.isoformat() if issued.expires_at else None,
    )


@router.get("/auth/link", include_in_schema=False)
async def sign_in_link(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    token: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    """Use a one-time sign-in link: 303 to the board, signed in; 401 when it is void."""
    session = await services.identity.redeem_link(token)
    response = RedirectResponse("/ui/", status_code=status.HTTP_303_SEE_OTHER)
    _set_session(response, session, request, settings)
    return response
