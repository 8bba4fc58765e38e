"""Read a service's pydantic-settings class from CONCIERGE_* variables, failing with a clear message.

Every service starts through `load`, so a bad or missing variable reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)
PREFIX = "CONCIERGE_"


def load(settings_type: type[S], service: str, hints: Mapping[str, str] | None = None) -> S:
    """The settings, or SystemExit with one line per bad variable saying what to set it to."""
    try:
        return settings_type()
    except ValidationError as err:
        problems = []
        for e in err.errors():
            variable = PREFIX + "_".join(str(p) for p in e["loc"]).upper() if e["loc"] else ""
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "missing":
                field = settings_type.model_fields.get(str(e["loc"][0])) if e["loc"] else None
                described = field.description if field is not None and field.description else "a value"
                hint = (hints or {}).get(variable, described[:1].lower() + described[1:].rstrip("."))
                problems.append(f"{variable} is not set; set it to {hint}")
            elif variable:
                problems.append(f"{variable}: {message} (got {e.get('input')!r})")
            else:
                problems.append(message)
        raise SystemExit(f"{service}: invalid configuration:\n  " + "\n  ".join(problems)) from None
