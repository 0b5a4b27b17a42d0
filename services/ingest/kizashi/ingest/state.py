"""The typed state the ingest app holds while it runs."""

from dataclasses import dataclass

from kizashi.ingest.identities import Identities
from kizashi.ingest.segment_config import SegmentMapping
from kizashi.runtime.lifecycle import ServiceState


@dataclass
class IngestState(ServiceState):
    identities: Identities
    segment_mapping: SegmentMapping
