"""The typed state the console app holds while it runs."""

from dataclasses import dataclass, field

import httpx

from kizashi.console.mapdigest import MapDigest
from kizashi.console.moves import Moves
from kizashi.console.settings import ConsoleSettings
from kizashi.runtime.lifecycle import ServiceState
from kizashi.runtime.observation_kinds import ObservationConfig
from kizashi.runtime.phases import PhaseConfig


@dataclass
class ConsoleState(ServiceState):
    settings: ConsoleSettings
    # The triggers API, with the service token: actions go through its lifecycle code.
    triggers: httpx.AsyncClient
    # The scoring API, with the service token: the segment cut-offs (kizashi.console.cutoffs).
    scoring: httpx.AsyncClient
    # Ingest's API, with the console's ingest key: the observations logged on the account page.
    ingest: httpx.AsyncClient
    # The ladder of phases.yaml (KIZASHI_CONFIG_DIR or the default), loaded at start.
    phases: PhaseConfig
    # observations.yaml: the kinds the form offers, their labels, hints and custom fields.
    observation_kinds: ObservationConfig
    # Segment moves over 7 and 30 days, refreshed in the background (kizashi.console.moves).
    moves: Moves = field(default_factory=Moves)
    # Everyone's map and segment counts, refreshed in the background (kizashi.console.mapdigest).
    map: MapDigest = field(default_factory=MapDigest)
