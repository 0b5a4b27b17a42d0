"""The ingest service's settings: the shared ones plus its ingest keys."""

from functools import lru_cache

from pydantic import SecretStr

from kizashi.runtime.settings import Settings


class IngestSettings(Settings):
    # Who may send events: `name:secret` entries, comma-separated (see ingest_key_names).
    ingest_keys: SecretStr = SecretStr("")

    def ingest_key_names(self) -> dict[str, str]:
        """secret → key name. Entries are `name:secret` or a bare secret (named `default`)."""
        keys: dict[str, str] = {}
        for index, entry in enumerate(filter(None, self.ingest_keys.get_secret_value().split(","))):
            name, sep, secret = entry.strip().partition(":")
            if not sep:
                name, secret = ("default" if index == 0 else f"key{index}"), name
            keys[secret.strip()] = name.strip()
        return keys


@lru_cache
def get_settings() -> IngestSettings:
    return IngestSettings()
