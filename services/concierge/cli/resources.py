"""Loading resource YAML for a command: valid resources, or every problem printed and exit 2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console

from concierge.api.loader import ResourceError, ResourceSet, load_paths

EXIT_INVALID = 2


def load_or_exit(paths: Sequence[Path], console: Console, *, nothing_done: str) -> ResourceSet:
    """The resources in `paths`; on problems, print them all ("…; nothing was started:") and exit 2."""
    try:
        return load_paths(list(paths))
    except ResourceError as err:
        console.print(f"[red]✗ {len(err.problems)} problem(s) in the resources; {nothing_done}:[/]")
        for problem in err.problems:
            console.print(f"  • {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
