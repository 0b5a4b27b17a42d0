"""The console's observation form (kizashi.console.obsform): what a person typed becomes the
event ingest takes, checked with the contract and phases.yaml, each bad field named; the KPI
period's forms; the funnel chart escapes the phase names it draws."""

from datetime import UTC, datetime

import pytest

from kizashi.console.funnel import funnel_svg
from kizashi.console.kpis import KpiError, Viewer, parse_period, scope
from kizashi.console.obsform import KINDS, FormRefused, observation_of
from kizashi.contracts.observations import OBSERVATION_KINDS, rep_observation_adapter
from kizashi.runtime.phases import load_phase_config

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
PHASES = load_phase_config(None)
AUTHOR = "rep@example.com"


def _form(kind: str, **fields: str) -> dict[str, str]:
    return {"account_id": "acme", "kind": kind, "event_id": "obs-1", **fields}


def test_every_kind_of_the_contract_has_a_form() -> None:
    assert {k.kind for k in KINDS} == set(OBSERVATION_KINDS)


def test_a_key_person_change_becomes_the_contracts_event() -> None:
    form = _form(
        "key_person_change",
        person="Dana",
        role="CFO",
        change="left",
        is_decision_maker="on",
        note="Leaves in June\r\nto a competitor",
        occurred_on="2026-12-01",
    )
    event = observation_of(form, author=AUTHOR, phases=PHASES, now=NOW)
    assert event == {
        "type": "rep_observation",
        "kind": "key_person_change",
        "account_id": "acme",
        "event_id": "obs-1",
        "author": AUTHOR,
        "note": "Leaves in June\nto a competitor",
        "occurred_at": "2026-12-01T12:00:00+00:00",
        "person": "Dana",
        "role": "CFO",
        "change": "left",
        "is_decision_maker": True,
    }
    rep_observation_adapter.validate_python({**event, "received_at": NOW})


def test_today_is_left_to_ingest_and_typed_fields_are_typed() -> None:
    event = observation_of(
        _form("satisfaction_with_rep", satisfaction="4", occurred_on="2026-12-03"),
        author=AUTHOR,
        phases=PHASES,
        now=NOW,
    )
    assert "occurred_at" not in event and event["satisfaction"] == 4
    unticked = observation_of(
        _form("key_person_change", person="P", role="R", change="joined"),
        author=AUTHOR,
        phases=PHASES,
        now=NOW,
    )
    assert unticked["is_decision_maker"] is False


@pytest.mark.parametrize(
    ("form", "field", "reason"),
    [
        (_form("gossip"), "kind", "one of key_person_change, phase_evidence"),
        (_form("phase_evidence", criterion="likes_us"), "criterion", "not a criterion"),
        (_form("phase_evidence"), "criterion", "is required"),
        (_form("customer_pain", pain="bored"), "pain", "'urgent' or 'inexperienced_staff'"),
        (_form("satisfaction_with_rep", satisfaction="9"), "satisfaction", "less than or equal"),
        (_form("satisfaction_with_rep", satisfaction="many"), "satisfaction", "integer"),
        (_form("renewal_timing", due_date="soon"), "due_date", "a date like"),
        (_form("relocation", occurred_on="2026-12-04"), "occurred_on", "in the future"),
        (_form("relocation", note="x" * 2001), "note", "at most 2000"),
        (_form("relocation", account_id=""), "account_id", "at least 1 character"),
        (_form("competitor_trouble", competitor="R", what="x" * 257), "what", "at most 256"),
    ],
)
def test_bad_fields_are_named(form, field, reason) -> None:
    with pytest.raises(FormRefused) as refused:
        observation_of(form, author=AUTHOR, phases=PHASES, now=NOW)
    assert field in refused.value.errors, refused.value.errors
    assert reason in refused.value.errors[field]


def test_periods() -> None:
    month = parse_period("2026-02", NOW)
    assert (month.start.isoformat(), month.end.isoformat()) == (
        "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
    )
    december = parse_period("2026-12", NOW)
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)
    days = parse_period("", NOW)
    assert (days.end - days.start).days == 30 and days.end == NOW
    for bad in ("2026-00", "30", "1..2", "2026-02-30..2026-03-01", "367d"):
        with pytest.raises(KpiError):
            parse_period(bad, NOW)


def test_scope_follows_the_roles() -> None:
    rep, manager = Viewer("r@x.example", "rep"), Viewer("m@x.example", "manager")
    assert scope(rep, "") == scope(rep, "all") == scope(rep, "R@X.example") == "r@x.example"
    with pytest.raises(KpiError) as refused:
        scope(rep, "other@x.example")
    assert refused.value.status_code == 403
    assert scope(manager, "") is None and scope(manager, "mine") == "m@x.example"
    assert scope(Viewer(None, "service"), "Other@X.example") == "other@x.example"


def test_the_funnel_escapes_phase_names() -> None:
    svg = funnel_svg([3, 1, 0], ["<b>Cold</b>", "Warm & close"])
    assert "<b>" not in svg and "&lt;b&gt;Cold&lt;/b&gt;" in svg and "Warm &amp; close" in svg
    assert 'data-phase="2" data-count="0"' in svg and "2 phase 2" in svg


def test_the_ingest_key_the_console_sends_with() -> None:
    from kizashi.console.settings import ConsoleSettings

    def key(**values) -> tuple[str, str] | None:
        settings = ConsoleSettings(_env_file=None, **{"console_ingest_key": None, **values})
        return settings.ingest_key()

    assert key(ingest_keys="web:w1,console:c1") == ("console", "c1")
    assert key(ingest_keys="web:w1,other:o1") == ("web", "w1")
    assert key(ingest_keys="bare") == ("default", "bare")
    assert key(ingest_keys="web:w1", console_ingest_key="c2") == ("console", "c2")
    assert key(ingest_keys="") is None


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from kizashi.console.kpis import _cell

    assert [_cell(v) for v in ("=SUM(A1)", "+1", "-2", "@x", "ann", None, -3, 0.5)] == [
        "'=SUM(A1)",
        "'+1",
        "'-2",
        "'@x",
        "ann",
        "",
        "-3",
        "0.5",
    ]


def _site_visit_config():
    from kizashi.runtime.observation_kinds import OBSERVATIONS_FILE

    return OBSERVATIONS_FILE.validate(
        {
            "kinds": {
                "relocation": {"enabled": False},
                "renewal_timing": {"label": "Contract end", "hint": "When it ends."},
                "site_visit": {
                    "label": "Site visit",
                    "hint": "You walked their site.",
                    "fields": {
                        "visited_on": {"type": "date", "required": True},
                        "machines_seen": {"type": "number", "label": "Machines seen"},
                        "state": {"type": "choice", "choices": ["new", "worn"], "required": True},
                        "summary": {"type": "text", "max_length": 10},
                        "escorted": {"type": "boolean"},
                    },
                },
            }
        },
        "observations.yaml",
    )


def test_the_form_offers_the_configured_kinds_with_labels_hints_and_fields() -> None:
    from kizashi.console.obsform import kinds_of

    offered = {k.kind: k for k in kinds_of(_site_visit_config())}
    assert "relocation" not in offered
    assert (offered["renewal_timing"].label, offered["renewal_timing"].hint) == (
        "Contract end",
        "When it ends.",
    )
    visit = offered["site_visit"]
    assert visit.custom and visit.hint == "You walked their site."
    assert [(f.name, f.input, f.required) for f in visit.fields] == [
        ("visited_on", "date", True),
        ("machines_seen", "number", False),
        ("state", "select", True),
        ("summary", "text", False),
        ("escorted", "checkbox", False),
    ]
    assert visit.fields[1].label == "Machines seen" and visit.fields[3].max_length == 10
    # The timeline still names a switched-off kind's old observations.
    from kizashi.console.obsform import kinds_of as every_kind

    assert "relocation" in {k.kind for k in every_kind(_site_visit_config(), every=True)}


def test_a_custom_kind_becomes_an_event_with_typed_fields() -> None:
    config = _site_visit_config()
    form = _form(
        "site_visit", visited_on="2026-12-02", machines_seen="3", state="worn", escorted="on"
    )
    event = observation_of(form, author=AUTHOR, phases=PHASES, kinds=config, now=NOW)
    assert event["kind"] == "site_visit"
    assert event["fields"] == {
        "visited_on": "2026-12-02",
        "machines_seen": 3,
        "state": "worn",
        "escorted": True,
    }
    rep_observation_adapter.validate_python({**event, "received_at": NOW})


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"state": "worn"}, "visited_on", "is required"),
        ({"visited_on": "2026-12-02", "state": "broken"}, "state", "must be one of new, worn"),
        (
            {"visited_on": "2026-12-02", "state": "new", "machines_seen": "many"},
            "machines_seen",
            "a number",
        ),
        (
            {"visited_on": "2026-12-02", "state": "new", "summary": "x" * 11},
            "summary",
            "at most 10",
        ),
    ],
)
def test_a_custom_kinds_bad_fields_are_named(fields, field, reason) -> None:
    with pytest.raises(FormRefused) as refused:
        observation_of(
            _form("site_visit", **fields),
            author=AUTHOR,
            phases=PHASES,
            kinds=_site_visit_config(),
            now=NOW,
        )
    assert reason in refused.value.errors[field]


def test_a_switched_off_kind_is_not_taken() -> None:
    with pytest.raises(FormRefused) as refused:
        observation_of(
            _form("relocation"), author=AUTHOR, phases=PHASES, kinds=_site_visit_config(), now=NOW
        )
    assert "relocation" not in refused.value.errors["kind"]
    assert "site_visit" in refused.value.errors["kind"]
