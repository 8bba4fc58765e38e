"""The `concierge` command line (Typer + Rich)."""
