"""The CLI's settings: every service's (the tools start, check and drive them all) plus what
only the dev tools read: the embedded servers' ports and the dev inbox's."""

from pydantic import Field

from kizashi.console.settings import ConsoleSettings
from kizashi.ingest.settings import IngestSettings
from kizashi.notifier.settings import NotifierSettings
from kizashi.scoring.settings import ScoringSettings
from kizashi.triggers.settings import TriggersSettings


class ToolSettings(
    IngestSettings, ScoringSettings, TriggersSettings, NotifierSettings, ConsoleSettings
):
    # The embedded default's own servers (`kizashi up` with no database or broker configured).
    embedded_postgres_port: int = 54329
    embedded_broker_port: int = 19092
    # Local stand-ins for Slack and SMTP when neither is configured (see kizashi.tools.devinbox).
    dev_webhook_port: int = 8025
    dev_smtp_port: int = 1025
    # A clean stop on the embedded broker waits at most this long for the pipeline to consume
    # and commit what it holds (kizashi.tools.drain); 0 stops without waiting.
    drain_timeout_s: float = Field(default=60.0, ge=0, le=3600)
