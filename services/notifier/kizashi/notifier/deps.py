"""What the notifier API's routes are given (FastAPI `Annotated` dependencies), so no route
reaches into `request.app.state` itself."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.notifier.state import NotifierState
from kizashi.runtime.auth import ApiCaller

__all__ = ["ApiCaller", "EngineDep", "StateDep"]


def get_state(request: Request) -> NotifierState:
    """The state `create_app`'s setup built when the service started."""
    return request.app.state.service


StateDep = Annotated[NotifierState, Depends(get_state)]


def get_engine(state: StateDep) -> AsyncEngine:
    return state.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
