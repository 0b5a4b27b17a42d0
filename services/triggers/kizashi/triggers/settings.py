"""The triggers service's settings: the shared ones, the sweep interval, and the key that
checks the ack/snooze links in alerts. Triggers reads nothing of its own besides."""

from functools import lru_cache

from kizashi.runtime.settings import ActionLinkSettings, SweepSettings


class TriggersSettings(SweepSettings, ActionLinkSettings):
    pass


@lru_cache
def get_settings() -> TriggersSettings:
    return TriggersSettings()
