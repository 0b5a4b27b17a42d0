"""What the console's routes are given (FastAPI `Annotated` dependencies): its state, the
signed-in person (or a redirect to the sign-in page), and the CSRF check of every form."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Form, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.console import repository
from kizashi.console.security import same_secret
from kizashi.console.sessions import SESSION_COOKIE, session_hash
from kizashi.console.settings import ConsoleSettings
from kizashi.console.state import ConsoleState
from kizashi.runtime.db import raw_transaction


class SignInRequired(Exception):
    """No current session: the app answers with a redirect to the sign-in page."""


class PageError(Exception):
    """An error answered as a page (403, 404, 409, 429, …) with its message."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.title, self.message = status_code, title, message


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    role: str
    csrf: str

    def may_act_on(self, owner_email: str | None) -> bool:
        """The same rule triggers enforces (kizashi.runtime.auth.Caller.may_act_on)."""
        if self.role in ("manager", "admin"):
            return True
        return bool(owner_email) and owner_email.lower() == self.email


def get_state(request: Request) -> ConsoleState:
    return request.app.state.service


def get_settings(request: Request) -> ConsoleSettings:
    return request.app.state.settings


StateDep = Annotated[ConsoleState, Depends(get_state)]
SettingsDep = Annotated[ConsoleSettings, Depends(get_settings)]


def get_engine(state: StateDep) -> AsyncEngine:
    return state.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


async def current_user(request: Request, engine: EngineDep) -> User:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 128:
        raise SignInRequired
    async with raw_transaction(engine) as connection:
        row = await repository.session_user(
            conn=connection, session_hash=session_hash(cookie), now=datetime.now(UTC)
        )
    if row is None:
        raise SignInRequired
    return User(row["id"], row["email"], row["name"], row["role"], row["csrf_token"])


UserDep = Annotated[User, Depends(current_user)]


async def form_user(user: UserDep, csrf: Annotated[str, Form(max_length=256)] = "") -> User:
    """The signed-in person of a form POST whose hidden `csrf` field matches their session."""
    if not same_secret(csrf, user.csrf):
        raise PageError(
            403,
            "Form refused",
            "This form came without its security token (or with an old one). Go back, reload "
            "the page and try again.",
        )
    return user


FormUserDep = Annotated[User, Depends(form_user)]
