"""The console's tables: people, their sessions, their API tokens, failed sign-ins. The console
alone writes them; `kizashi.runtime.auth` reads users and api_tokens to let personal tokens
into every service's API (architecture §11)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # Stored lower-case: it is matched, case-insensitively, to accounts' owner_email.
    Column("email", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("slack", Text, nullable=True),
    Column("role", Text, nullable=False),
    # argon2id (argon2-cffi's PasswordHasher), parameters in the string.
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('rep', 'manager', 'admin')", name="users_role"),
    CheckConstraint("email = lower(email)", name="users_email_lower"),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    # SHA-256 of the cookie's value: a copy of the table opens no session.
    Column("id", Text, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The session's CSRF token, in a hidden field of every form (not a secret from the user).
    Column("csrf_token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("user_sessions_user", "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    # SHA-256 of the token (256 random bits), looked up on every API request.
    Column("token_hash", Text, nullable=False, unique=True),
    # The first characters, so a person can tell their tokens apart.
    Column("prefix", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("api_tokens_user", "user_id"),
)

signin_attempts = Table(
    "signin_attempts",
    metadata,
    # "email:<address>" or "client:<address>": each is slowed down on its own.
    Column("key", Text, primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("blocked_until", DateTime(timezone=True), nullable=True),
)
