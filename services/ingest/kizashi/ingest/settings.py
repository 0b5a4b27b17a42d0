"""The ingest service's settings: the shared ones plus its ingest keys."""

from functools import lru_cache

from pydantic import SecretStr

from kizashi.runtime.settings import Settings, ingest_key_entries


class IngestSettings(Settings):
    # Who may send events: `name:secret` entries, comma-separated (see ingest_key_names).
    ingest_keys: SecretStr = SecretStr("")

    def ingest_key_names(self) -> dict[str, str]:
        """secret → key name. Entries are `name:secret` or a bare secret (named `default`)."""
        entries = ingest_key_entries(self.ingest_keys.get_secret_value())
        return {secret: name for name, secret in entries}


@lru_cache
def get_settings() -> IngestSettings:
    return IngestSettings()
