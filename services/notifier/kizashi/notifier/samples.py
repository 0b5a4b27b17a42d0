"""The signal a receiver test sends: clearly labelled, with realistic content."""

from datetime import UTC, date, datetime

from kizashi.contracts.accounts import AccountFacts
from kizashi.contracts.scores import ScoreSnapshot
from kizashi.contracts.signals import OpportunitySignal


def sample_signal() -> OpportunitySignal:
    return OpportunitySignal(
        signal_id="test-signal",
        rule="upsell_intent",
        account_id="kizashi-test",
        priority="low",
        episode="test",
        fired_at=datetime.now(UTC),
        reasons=["This is a test message from Kizashi: your receiver works."],
        suggested_play="Nothing to do: this checks the route from Kizashi to you.",
        account=AccountFacts(
            account_id="kizashi-test",
            name="Test account (Kizashi)",
            plan="Test",
            arr=0,
            renewal_date=date(2030, 1, 1),
        ),
        scores=ScoreSnapshot(cs=50, op=50, segment="nurture", priority="low"),
    )
