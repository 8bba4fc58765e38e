"""`python -m concierge` is the `concierge` command."""

from concierge.cli.main import app

app()
