"""The managers' KPIs (issue #18) over a scripted month, on a real console server
(`kizashi serve console`) and a PostgreSQL database of their own: every figure of every rep is
asserted, with the period's edges (a row at the start counts, one at the end does not), an
owner spelled in capitals, Kizashi's own actions not counted as acting, and a stay that ended
after the period left out. Then who may see what (session, service token, personal tokens of
a rep and a manager) and the 4xx of bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from kizashi.console import repository, security
from kizashi.runtime.auth import hash_token, new_personal_token
from kizashi.runtime.db import create_engine, raw_transaction
from tests.support import infra
from tests.support.console import served_console

SERVICE_TOKEN = "kpi-service-token-for-tests"  # noqa: S105
PASSWORD = "a fine long password"  # noqa: S105
ANN, BEN, MIA, CY = (f"{n}@kpi.example" for n in ("ann", "ben", "mia", "cy"))
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def _month() -> tuple[datetime, datetime, str]:
    """The previous calendar month (UTC): wholly in the past, whatever today is."""
    today = datetime.now(UTC)
    end = datetime(today.year, today.month, 1, tzinfo=UTC)
    start = (end - DAY).replace(day=1)
    return start, end, start.strftime("%Y-%m")


M0, END, MONTH = _month()
AS_OF = END  # coverage's day: the period's end (it is in the past)


def _script() -> dict[str, list[tuple]]:
    accounts = [
        ("a1", ANN, 3),
        ("a2", ANN, 1),
        ("a3", ANN, 1),
        ("a4", "ANN@kpi.example", None),  # not scored yet: phase 0; owner in capitals
        ("b1", BEN, 2),
        ("b2", BEN, 0),
        ("u1", None, 2),  # nobody's: in no rep's figures
    ]
    changes = [
        ("a1", M0 - 10 * DAY, 0, 1),  # before the period: no move, but its stay ends inside
        ("a1", M0 + 4 * DAY, 1, 2),
        ("a1", M0 + 12 * DAY, 2, 3),
        ("a2", M0 + 2 * DAY, 0, 1),
        ("a2", M0 + 6 * DAY, 1, 2),
        ("a2", M0 + 20 * DAY, 2, 1),
        ("a3", M0 + 3 * DAY, 0, 1),
        ("a3", M0 + 9 * DAY, 1, 0),
        ("a3", END + HOUR, 0, 1),  # after the period: its phase-0 stay ended too late
        ("b1", M0, 0, 1),  # at the start: counts
        ("b1", M0 + 10 * DAY, 1, 2),
        ("b2", M0 - 5 * DAY, 0, 1),
        ("b2", END, 1, 0),  # at the end: does not count, nor does the stay it ends
        ("u1", M0 + DAY, 1, 2),
    ]
    observations = [  # (account, id, occurred_at, received_at, author)
        ("a1", "o1", M0 + DAY, M0 + DAY, ANN),
        ("a3", "o2", M0 + 2 * DAY, M0 + 2 * DAY, ANN),
        ("a3", "o3", M0 + 15 * DAY, M0 + 15 * DAY, "Ann@kpi.example"),
        ("a2", "o4", AS_OF - 91 * DAY, M0 - 3 * DAY, ANN),  # logged before; 91 days old
        ("a4", "o5", END + HOUR, END, ANN),  # received at the end: not in the period
        ("b1", "o6", M0 + 7 * DAY, M0 + 7 * DAY, BEN),
        ("b2", "o7", M0 + 8 * DAY, M0 + 8 * DAY, MIA),
        ("b2", "o8", M0 + 9 * DAY, M0 + 9 * DAY, MIA),
    ]
    signals = [("s1", "a1", M0 + DAY), ("s2", "a2", M0 + 3 * DAY), ("s3", "a3", M0 + 5 * DAY)]
    signals += [("s4", "a4", M0 + 6 * DAY), ("s5", "a1", M0 - DAY), ("s6", "a2", END)]
    signals += [("s7", "b1", M0 + 2 * DAY), ("s8", "u1", M0 + 2 * DAY)]
    fired = {sid: at for sid, _, at in signals}
    actions = [
        ("s1", "acknowledged", ANN, fired["s1"] + 2 * HOUR),
        ("s1", "resolved", ANN, fired["s1"] + 5 * HOUR),
        ("s2", "snoozed", "alert-link", fired["s2"] + HOUR / 2),
        ("s2", "reopened", "kizashi:snooze-ended", fired["s2"] + 4 * HOUR),
        ("s3", "resolved", "kizashi:auto-resolve", fired["s3"] + HOUR),  # not acting
        ("s4", "acknowledged", MIA, fired["s4"] + 10 * HOUR),
        ("s5", "acknowledged", ANN, fired["s5"] + HOUR),  # fired before the period
        ("s8", "acknowledged", MIA, fired["s8"] + HOUR),
    ]
    return {"accounts": accounts, "changes": changes, "observations": observations}, (
        signals,
        actions,
    )


async def _load(url: str) -> dict[str, str]:
    """The scripted month, and four people; returns personal tokens by email."""
    tables, (signals, actions) = _script()
    engine = create_engine(url)
    tokens = {}
    try:
        async with raw_transaction(engine) as c:
            for account_id, owner, phase in tables["accounts"]:
                facts = {"name": f"Account {account_id}"}
                if owner:
                    facts["owner_email"] = owner
                await c.execute(
                    "INSERT INTO accounts (account_id, facts, state) VALUES ($1, $2::jsonb, '{}')",
                    account_id,
                    orjson.dumps(facts).decode(),
                )
                if phase is not None:
                    await c.execute(
                        """INSERT INTO scores (account_id, cs, op, segment, priority, breakdown,
                               features, config_version, computed_at, phase)
                           VALUES ($1, 50, 50, 'nurture', 'low', '[]', '{}', 't', now(), $2)""",
                        account_id,
                        phase,
                    )
            await c.executemany(
                "INSERT INTO phase_changes (account_id, at, from_phase, to_phase) "
                "VALUES ($1, $2, $3, $4)",
                tables["changes"],
            )
            await c.executemany(
                """INSERT INTO observations (account_id, observation_id, occurred_at, received_at,
                       author, kind, note, fields)
                   VALUES ($1, $2, $3, $4, $5, 'customer_pain', '', '{"pain": "urgent"}')""",
                tables["observations"],
            )
            await c.executemany(
                """INSERT INTO signals (signal_id, account_id, kind, rule, priority, episode,
                       fired_at, payload) VALUES ($1, $2, 'churn_risk', 'detractor', 'high', '1',
                       $3, '{}')""",
                signals,
            )
            await c.executemany(
                "INSERT INTO signal_actions (signal_id, action, actor, at) VALUES ($1, $2, $3, $4)",
                actions,
            )
            for email, role in ((ANN, "rep"), (BEN, "rep"), (MIA, "manager"), (CY, "rep")):
                row = await repository.add_user(
                    conn=c,
                    email=email,
                    name=email.split("@")[0].title(),
                    slack=None,
                    role=role,
                    password_hash=security.hash_password(PASSWORD),
                )
                token = new_personal_token()
                await repository.add_token(
                    conn=c,
                    user_id=row["id"],
                    name="kpis",
                    token_hash=hash_token(token),
                    prefix=token[:10],
                )
                tokens[email] = token
    finally:
        await engine.dispose()
    return tokens


@pytest.fixture(scope="module")
async def console(database_url, tmp_path_factory):
    """A console server, as deployed, on a database holding the scripted month only."""
    log_path = tmp_path_factory.mktemp("kpis") / "console.log"
    async with infra.scratch_database(database_url, "kizashi_kpis") as url:
        tokens = await _load(url)
        env = {"KIZASHI_DATABASE_URL": url, "KIZASHI_API_TOKEN": SERVICE_TOKEN}
        async with served_console(env, log_path) as base:
            yield base, tokens


async def _get(base: str, token: str | None, path: str = "/v1/kpis", **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=15) as client:
        return await client.get(path, params=params)


def _by_rep(body: dict) -> dict[str, dict]:
    return {r["rep"]: r for r in body["reps"]}


async def test_every_figure_of_the_scripted_month(console) -> None:
    base, tokens = console
    response = await _get(base, tokens[MIA], period=MONTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["period"]["start"] == M0.isoformat() and body["period"]["end"] == END.isoformat()
    assert [p["name"] for p in body["phases"]][:2] == ["Prospecting", "Meeting possible"]
    reps = _by_rep(body)
    assert set(reps) == {ANN, BEN, MIA}  # cy owns nothing and logged nothing

    ann = reps[ANN]
    assert ann["name"] == "Ann"
    assert ann["accounts"] == 4 and ann["accounts_per_phase"] == [1, 2, 0, 1, 0]
    assert ann["moves"] == {"up": 5, "down": 2}
    # Stays ended in the period: phase 1 for 14 (a1), 4 (a2) and 6 days (a3); phase 2 for 8
    # (a1) and 14 days (a2). a3's stay in phase 0 ended after the period.
    assert ann["median_days_in_phase"] == [None, 6.0, 11.0, None, None]
    assert ann["stays_ended"] == [0, 3, 2, 0, 0]
    assert ann["observations_logged"] == 3
    # s1 after 2 h, s2 after 30 min (an alert link), s4 after 10 h (a manager); s3 only
    # Kizashi resolved. p90 interpolates between 2 h and 10 h: 2 h + 0.8 × 8 h.
    assert ann["signals"] == {
        "fired": 4,
        "acted_on": 3,
        "first_action_p50_s": 7200.0,
        "first_action_p90_s": 30240.0,
    }
    # a2's only observation is 91 days old, a4 has one only after the period.
    assert ann["coverage"] == {"owned": 4, "without_observation_90d": 2, "share": 0.5}

    ben = reps[BEN]
    assert ben["accounts"] == 2 and ben["accounts_per_phase"] == [1, 0, 1, 0, 0]
    assert ben["moves"] == {"up": 2, "down": 0}
    assert ben["median_days_in_phase"] == [None, 10.0, None, None, None]
    assert ben["observations_logged"] == 1
    assert ben["signals"] == {
        "fired": 1,
        "acted_on": 0,
        "first_action_p50_s": None,
        "first_action_p90_s": None,
    }
    assert ben["coverage"] == {"owned": 2, "without_observation_90d": 0, "share": 0.0}

    mia = reps[MIA]
    assert mia["accounts"] == 0 and mia["observations_logged"] == 2
    assert mia["moves"] == {"up": 0, "down": 0} and mia["coverage"]["owned"] == 0

    # The same days as a range of dates, and one rep asked for by a manager.
    last = (END - DAY).date().isoformat()
    ranged = await _get(base, tokens[MIA], period=f"{M0.date().isoformat()}..{last}")
    assert _by_rep(ranged.json()) == reps
    one = await _get(base, tokens[MIA], period=MONTH, owner=BEN.upper())
    assert one.status_code == 200 and _by_rep(one.json()) == {BEN: ben}


async def test_the_csv_holds_the_same_figures(console) -> None:
    base, tokens = console
    response = await _get(base, SERVICE_TOKEN, "/v1/kpis.csv", period=MONTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = {r["rep"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert set(rows) == {ANN, BEN, MIA}
    ann = rows[ANN]
    assert [ann[f"accounts_phase_{p}"] for p in range(5)] == ["1", "2", "0", "1", "0"]
    assert (ann["moves_up"], ann["moves_down"]) == ("5", "2")
    assert (ann["median_days_in_phase_1"], ann["median_days_in_phase_0"]) == ("6.0", "")
    assert (ann["signals_fired"], ann["signals_acted_on"]) == ("4", "3")
    assert (ann["first_action_p50_s"], ann["first_action_p90_s"]) == ("7200.0", "30240.0")
    assert ann["share_without_observation_90d"] == "0.5"


async def test_who_sees_what(console) -> None:
    base, tokens = console
    # A rep sees their own figures, with their token or their session.
    mine = await _get(base, tokens[ANN], period=MONTH)
    assert mine.status_code == 200 and set(_by_rep(mine.json())) == {ANN}
    assert (await _get(base, tokens[ANN], period=MONTH, owner="all")).json()["owner"] == ANN
    refused = await _get(base, tokens[ANN], period=MONTH, owner=BEN)
    assert refused.status_code == 403 and "own KPIs" in refused.json()["detail"]
    async with httpx.AsyncClient(base_url=base, timeout=15) as browser:
        form = await browser.get("/signin")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        signed = await browser.post(
            "/signin", data={"email": ANN, "password": PASSWORD, "csrf": csrf, "next": "/"}
        )
        assert signed.status_code == 303
        by_session = await browser.get("/v1/kpis", params={"period": MONTH})
        assert by_session.status_code == 200 and set(_by_rep(by_session.json())) == {ANN}
        page = await browser.get("/kpis", params={"period": MONTH})
        assert page.status_code == 200 and 'class="funnel"' in page.text
        assert f'data-rep="{BEN}"' not in page.text
    # The service token and a manager see everyone.
    for token in (SERVICE_TOKEN, tokens[MIA]):
        everyone = await _get(base, token, period=MONTH)
        assert set(_by_rep(everyone.json())) == {ANN, BEN, MIA}
    # Nobody without a session or a token; not with a wrong token.
    for token in (None, "wrong", "kzp_wrong"):
        answer = await _get(base, token, period=MONTH)
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"period": "yesterday"}, "period"),
        ({"period": "2026-13"}, "not a date"),
        ({"period": "400d"}, "at most 366"),
        ({"period": "0d"}, "period"),
        ({"period": "2026-11-30..2026-11-01"}, "before the start"),
        ({"period": "2024-01-01..2026-01-01"}, "at most 366"),
        ({"owner": "not an email"}, "owner"),
        ({"owner": "mine"}, "service token"),
    ],
)
async def test_bad_parameters_are_a_clear_422(console, params, names) -> None:
    base, _ = console
    answer = await _get(base, SERVICE_TOKEN, **params)
    assert answer.status_code == 422, answer.text
    assert names in answer.json()["detail"]


async def test_a_parameter_given_twice_is_refused(console) -> None:
    base, _ = console
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        answer = await client.get(
            "/v1/kpis?period=30d&period=7d", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
        )
    assert answer.status_code == 422 and "once" in answer.json()["detail"]
