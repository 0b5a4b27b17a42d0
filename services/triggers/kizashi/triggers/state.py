"""The typed state the triggers app holds while it runs."""

from dataclasses import dataclass

from kizashi.runtime.lifecycle import ServiceState
from kizashi.triggers.rules import RuleBook


@dataclass
class TriggersState(ServiceState):
    rules: RuleBook
