"""The fault suite (`pytest -m faults`): each case breaks something real in the middle of a
stream and checks that nothing accepted is lost or applied twice, that no alert is lost or
doubled, and that dead letters hold exactly the poison records."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.pipeline import FaultStack, close_fault_stack, open_fault_stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Each phase's report on the item (`item.failed`), so a fixture can keep what failed."""
    report = yield
    if report.failed:
        item.failed = True
    return report


async def _fault_stack(flavour: str, request: pytest.FixtureRequest | None = None):
    # Not under pytest's basetemp: PostgreSQL runs as another user when the tests run as root,
    # and every new pytest session on the machine resets that folder to mode 0700.
    workdir = Path(tempfile.mkdtemp(prefix="kizashi-faults-"))
    try:
        faults: FaultStack = await open_fault_stack(workdir, flavour)
        try:
            yield faults
        finally:
            await close_fault_stack(faults)
    finally:
        if request is not None and getattr(request.node, "failed", False):
            # Kept for the post-mortem: the stack's log, each Kafka node's server.log.
            print(f"\nthe failed case's servers and logs are kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
async def fault_stack(broker_flavour: str):
    """One stack on servers of its own for the cases that do not stop those servers (one per
    broker flavour: tests/conftest.py runs each case on each)."""
    async for faults in _fault_stack(broker_flavour):
        yield faults


@pytest.fixture
async def own_fault_stack(broker_flavour: str, request: pytest.FixtureRequest):
    """A stack for one case that stops its PostgreSQL or its broker (its folder is kept when
    the case fails)."""
    async for faults in _fault_stack(broker_flavour, request):
        yield faults
