"""`kizashi users add|list|disable|reset-password`: the console's people, from the command
line (which is admin by nature), against the database of a running `kizashi up` (found the
way `kizashi rescore` finds it) or KIZASHI_DATABASE_URL. Also the first admin `kizashi up`
makes when there is nobody yet."""

import argparse
import asyncio
import getpass
import sys

import asyncpg

from kizashi.console import repository
from kizashi.console.security import (
    BadInput,
    check_password,
    check_role,
    generate_password,
    hash_password,
    normalise_email,
)
from kizashi.runtime.db import create_engine, raw_transaction
from kizashi.tools.settings import ToolSettings
from kizashi.tools.stack import credentials_file, read_env_file, read_stack, write_credentials

FIRST_ADMIN = "admin@localhost"
ADMIN_EMAIL_KEY = "CONSOLE_ADMIN_EMAIL"
ADMIN_PASSWORD_KEY = "CONSOLE_ADMIN_PASSWORD"  # noqa: S105 - a key name, not a password


class UsersError(Exception):
    """A refusal the person can act on; printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = commands.add_parser("add", help="add a person (prints a generated password once)")
    add.add_argument("email")
    add.add_argument("--role", required=True, help="rep, manager or admin")
    add.add_argument("--name", help="display name (default: the email's local part)")
    add.add_argument("--slack", help="Slack handle, e.g. @alice")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    commands.add_parser("list", help="list everyone")
    disable = commands.add_parser("disable", help="disable a person: their sessions and tokens end")
    disable.add_argument("email")
    reset = commands.add_parser("reset-password", help="set a new password (ends their sessions)")
    reset.add_argument("email")
    reset.add_argument("--password-stdin", action="store_true")


def database_url(settings: ToolSettings) -> str:
    if settings.database_url:
        return settings.database_url
    if (read_stack(settings.data_dir) or {}).get("embedded_database"):
        return f"postgresql://postgres@127.0.0.1:{settings.embedded_postgres_port}/kizashi"
    raise UsersError(
        "no database: set KIZASHI_DATABASE_URL, or run this next to a running `kizashi up` "
        "(same folder, same KIZASHI_DATA_DIR)",
        code=3,
    )


def _read_password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated?)."""
    if not from_stdin:
        return generate_password(), True
    if sys.stdin.isatty():
        return check_password(getpass.getpass("password: ")), False
    return check_password(sys.stdin.readline().rstrip("\r\n")), False


async def _add(url: str, args: argparse.Namespace) -> str:
    email = normalise_email(args.email)
    role = check_role(args.role)
    password, generated = _read_password(args.password_stdin)
    name = (args.name or email.split("@")[0]).strip()
    engine = create_engine(url, pool_size=1)
    try:
        async with raw_transaction(engine) as connection:
            row = await repository.add_user(
                conn=connection,
                email=email,
                name=name,
                slack=args.slack,
                role=role,
                password_hash=await asyncio.to_thread(hash_password, password),
            )
    finally:
        await engine.dispose()
    if row is None:
        raise UsersError(f"{email} already exists (use `kizashi users reset-password`)")
    line = f"added {email} ({role})"
    return f"{line}\npassword (shown once): {password}" if generated else line


async def _list(url: str) -> str:
    engine = create_engine(url, pool_size=1)
    try:
        async with raw_transaction(engine) as connection:
            rows = await repository.list_users(conn=connection)
    finally:
        await engine.dispose()
    lines = [f"{'email':<32} {'role':<8} {'state':<9} {'slack':<16} name"]
    for r in rows:
        state = "disabled" if r["disabled"] else "active"
        lines.append(
            f"{r['email']:<32} {r['role']:<8} {state:<9} {r['slack'] or '':<16} {r['name']}"
        )
    return "\n".join(lines)


async def _disable(url: str, email: str) -> str:
    email = normalise_email(email)
    engine = create_engine(url, pool_size=1)
    try:
        async with raw_transaction(engine) as connection:
            found = await repository.disable_user(conn=connection, email=email)
    finally:
        await engine.dispose()
    if not found:
        raise UsersError(f"no user {email}")
    return f"disabled {email}: their sessions and API tokens no longer work"


async def _reset(url: str, args: argparse.Namespace) -> str:
    email = normalise_email(args.email)
    password, generated = _read_password(args.password_stdin)
    engine = create_engine(url, pool_size=1)
    try:
        async with raw_transaction(engine) as connection:
            found = await repository.set_password(
                conn=connection,
                email=email,
                password_hash=await asyncio.to_thread(hash_password, password),
            )
    finally:
        await engine.dispose()
    if not found:
        raise UsersError(f"no user {email}")
    line = f"new password set for {email}; their sessions ended"
    return f"{line}\npassword (shown once): {password}" if generated else line


def run(args: argparse.Namespace, settings: ToolSettings) -> int:
    try:
        url = database_url(settings)
        if args.users_command == "add":
            out = asyncio.run(_add(url, args))
        elif args.users_command == "list":
            out = asyncio.run(_list(url))
        elif args.users_command == "disable":
            out = asyncio.run(_disable(url, args.email))
        else:
            out = asyncio.run(_reset(url, args))
    except BadInput as error:
        print(f"kizashi users: {error}", file=sys.stderr)
        return 2
    except UsersError as error:
        print(f"kizashi users: {error}", file=sys.stderr)
        return error.code
    except (OSError, asyncpg.PostgresError) as error:
        print(f"kizashi users: cannot use the database: {type(error).__name__}", file=sys.stderr)
        return 3
    print(out)
    return 0


async def _first_admin(url: str) -> str | None:
    """Make admin@localhost with a generated password when there is nobody; its password."""
    engine = create_engine(url, pool_size=1)
    try:
        async with raw_transaction(engine) as connection:
            if await repository.count_users(conn=connection):
                return None
            password = generate_password()
            row = await repository.add_user(
                conn=connection,
                email=FIRST_ADMIN,
                name="Admin",
                slack=None,
                role="admin",
                password_hash=hash_password(password),
            )
            return password if row is not None else None
    finally:
        await engine.dispose()


async def ensure_people(url: str, people: dict[str, tuple[str, str]]) -> list[str]:
    """Adds those of `people` (email → (name, role)) who are not users yet, each with a
    generated password nobody is shown (`kizashi users reset-password` sets one); the emails
    added. For `kizashi demo`, whose reps author observations."""
    engine = create_engine(url, pool_size=1)
    added = []
    try:
        async with raw_transaction(engine) as connection:
            for email, (name, role) in people.items():
                row = await repository.add_user(
                    conn=connection,
                    email=email,
                    name=name,
                    slack=None,
                    role=role,
                    password_hash=hash_password(generate_password()),
                )
                if row is not None:
                    added.append(email)
    finally:
        await engine.dispose()
    return added


def ensure_first_admin(settings: ToolSettings, url: str) -> tuple[str, bool]:
    """For `kizashi up`: (the first admin's email, whether it was made now). A new admin's
    password goes to credentials.env (0600), never to the log."""
    password = asyncio.run(_first_admin(url))
    if password is None:
        return FIRST_ADMIN, False
    stored = read_env_file(credentials_file(settings.data_dir))
    write_credentials(
        settings.data_dir, {**stored, ADMIN_EMAIL_KEY: FIRST_ADMIN, ADMIN_PASSWORD_KEY: password}
    )
    return FIRST_ADMIN, True
