"""Runs gitops/argocd/health.lua as Argo CD does: a Lua 5.1 chunk with the object as global `obj`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lupa import lua51

HEALTH_LUA = Path(__file__).resolve().parent.parent / "gitops" / "argocd" / "health.lua"


@dataclass(frozen=True)
class Health:
    status: str
    message: str


def without_nulls(value: Any) -> Any:
    """JSON null is nil in Lua, i.e. absent: drop it, as Argo CD's conversion does."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value if item is not None]
    return value


def study_health(obj: dict[str, Any], script: str | None = None) -> Health:
    """The health Argo CD would show for this Study object."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)  # lupa's default, which its stubs make required
    lua.globals()["obj"] = lua.table_from(without_nulls(obj), recursive=True)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    # The stubs type what a chunk returns as `object`; health.lua returns a table.
    return Health(status=str(result["status"]), message=str(result["message"] or ""))  # type: ignore[index]
