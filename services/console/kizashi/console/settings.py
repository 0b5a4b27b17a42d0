"""The console's settings: the shared ones, where it reaches the triggers API (its actions go
through triggers' own lifecycle code) and ingest's (the observations reps log), and how long a
session lasts."""

from functools import lru_cache

from pydantic import Field, SecretStr

from kizashi.runtime.settings import Settings, ingest_key_entries

# Without KIZASHI_CONSOLE_INGEST_KEY, the console sends observations with the entry of
# KIZASHI_INGEST_KEYS of this name, else its first entry (architecture §11.5).
CONSOLE_INGEST_KEY_NAME = "console"


class ConsoleSettings(Settings):
    # The triggers service's API as the console reaches it (not a browser-facing address);
    # unset means the triggers port on this host, as under `kizashi up`.
    triggers_url: str | None = None
    # The scoring service's API (the segment cut-offs the map draws, from GET /v1/segments);
    # unset means the scoring port on this host.
    scoring_url: str | None = None
    # Ingest's API as the console reaches it (observations logged on the account page go through
    # POST /v1/events); unset means the ingest port on this host.
    ingest_url: str | None = None
    # The ingest key the console sends observations with (one of ingest's keys; its name
    # there becomes the observations' `source`). Unset: an entry of KIZASHI_INGEST_KEYS, the
    # variable ingest reads, which `kizashi up` and compose hand to every service.
    console_ingest_key: SecretStr | None = None
    ingest_keys: SecretStr = SecretStr("")
    # A session ends this long after sign-in (or at sign-out, or when its user is disabled).
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    def triggers_api(self) -> str:
        return self._api(self.triggers_url, self.triggers_port)

    def scoring_api(self) -> str:
        return self._api(self.scoring_url, self.scoring_port)

    def ingest_api(self) -> str:
        return self._api(self.ingest_url, self.ingest_port)

    def ingest_key(self) -> tuple[str, str] | None:
        """(name, secret) of the ingest key the console sends observations with:
        KIZASHI_CONSOLE_INGEST_KEY, else KIZASHI_INGEST_KEYS' entry named `console`, else its
        first; None when there is none."""
        if self.console_ingest_key and self.console_ingest_key.get_secret_value():
            return CONSOLE_INGEST_KEY_NAME, self.console_ingest_key.get_secret_value()
        entries = ingest_key_entries(self.ingest_keys.get_secret_value())
        named = [e for e in entries if e[0] == CONSOLE_INGEST_KEY_NAME]
        return (named or entries or [None])[0]

    def _api(self, url: str | None, port: int) -> str:
        if url:
            return url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{port}"

    def secure_cookies(self) -> bool:
        """Cookies are Secure when the browser-facing address is https (a request that arrived
        over https makes them Secure too, see kizashi.console.sessions)."""
        return any(
            (url or "").lower().startswith("https://")
            for url in (self.console_url, self.public_url)
        )


@lru_cache
def get_settings() -> ConsoleSettings:
    return ConsoleSettings()
