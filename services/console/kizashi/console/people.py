"""The admins' page of people: everyone, with their role and state; add someone (the
generated password is shown once), disable someone. The `kizashi users` command does the same
from a shell. Only admins see or use it; anyone else gets a 403 page."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from kizashi.console import repository, security
from kizashi.console.deps import EngineDep, FormUserDep, PageError, User, UserDep
from kizashi.console.pages import see_other
from kizashi.console.views import render
from kizashi.runtime.db import raw_transaction

router = APIRouter(include_in_schema=False)


def _admin(user: User) -> User:
    if user.role != "admin":
        raise PageError(403, "Admins only", "Only an admin manages people.")
    return user


def admin_page(user: UserDep) -> User:
    return _admin(user)


def admin_form(user: FormUserDep) -> User:
    return _admin(user)


AdminDep = Annotated[User, Depends(admin_page)]
AdminFormDep = Annotated[User, Depends(admin_form)]


async def _page(request: Request, engine, user: User, **extra) -> HTMLResponse:
    async with raw_transaction(engine) as connection:
        people = await repository.list_users(conn=connection)
    context = {"new_email": None, "new_password": None, "notice": None, **extra}
    return render(request, "people.html", user=user, people=people, roles=security.ROLES, **context)


@router.get("/people", response_class=HTMLResponse)
async def people(request: Request, engine: EngineDep, user: AdminDep) -> Response:
    return await _page(request, engine, user)


@router.post("/people", response_class=HTMLResponse)
async def add_person(
    request: Request,
    engine: EngineDep,
    user: AdminFormDep,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    slack: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        address = security.normalise_email(email)
        security.check_role(role)
    except security.BadInput as error:
        raise PageError(400, "Not added", str(error)) from error
    password = security.generate_password()
    hashed = await asyncio.to_thread(security.hash_password, password)
    async with raw_transaction(engine) as connection:
        row = await repository.add_user(
            conn=connection,
            email=address,
            name=name.strip() or address.split("@")[0],
            slack=slack.strip() or None,
            role=role,
            password_hash=hashed,
        )
    if row is None:
        raise PageError(409, "Not added", f"{address} already has an account.")
    # Shown in this answer only: give it to them, they can have it reset later.
    return await _page(request, engine, user, new_email=address, new_password=password)


@router.post("/people/{email}/disable")
async def disable_person(engine: EngineDep, user: AdminFormDep, email: str) -> Response:
    if email.lower() == user.email:
        raise PageError(409, "Not disabled", "You cannot disable yourself.")
    async with raw_transaction(engine) as connection:
        found = await repository.disable_user(conn=connection, email=email.lower())
    if not found:
        raise PageError(404, "No such person", "Nobody has that email.")
    return see_other("/people")
