"""The typed state the triggers app holds while it runs."""

from dataclasses import dataclass

from kizashi.kit.runtime import ServiceState
from kizashi.triggers.rules import RuleBook


@dataclass
class TriggersService(ServiceState):
    rules: RuleBook
