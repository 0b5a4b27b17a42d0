"""The console's settings: the shared ones, where it reaches the triggers API (its actions go
through triggers' own lifecycle code), and how long a session lasts."""

from functools import lru_cache

from pydantic import Field

from kizashi.runtime.settings import Settings


class ConsoleSettings(Settings):
    # The triggers service's API as the console reaches it (not a browser-facing address);
    # unset means the triggers port on this host, as under `kizashi up`.
    triggers_url: str | None = None
    # The scoring service's API (the segment cut-offs the map draws, from GET /v1/segments);
    # unset means the scoring port on this host.
    scoring_url: str | None = None
    # A session ends this long after sign-in (or at sign-out, or when its user is disabled).
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)

    def triggers_api(self) -> str:
        return self._api(self.triggers_url, self.triggers_port)

    def scoring_api(self) -> str:
        return self._api(self.scoring_url, self.scoring_port)

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
