"""What the signals API's routes are given (FastAPI `Annotated` dependencies), so no route
reaches into `request.app.state` itself."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from kizashi.runtime.auth import ApiCaller, CallerDep
from kizashi.triggers.settings import TriggersSettings
from kizashi.triggers.state import TriggersState

__all__ = ["ApiCaller", "CallerDep", "EngineDep", "SettingsDep", "StateDep"]


def get_state(request: Request) -> TriggersState:
    """The state `create_app`'s setup built when the service started."""
    return request.app.state.service


def get_settings(request: Request) -> TriggersSettings:
    return request.app.state.settings


StateDep = Annotated[TriggersState, Depends(get_state)]
SettingsDep = Annotated[TriggersSettings, Depends(get_settings)]


def get_engine(state: StateDep) -> AsyncEngine:
    return state.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
