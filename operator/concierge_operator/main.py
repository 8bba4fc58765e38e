"""`concierge-operator`: run the Kopf operator cluster-wide with the handlers of this package."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf
from pydantic import ValidationError

from concierge.api.loader import describe_errors
from concierge_operator.handlers import register
from concierge_operator.settings import OperatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="concierge-operator", description=__doc__)
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="Liveness endpoint URL.")
    parser.add_argument("--verbose", action="store_true", help="Log every handler call.")
    args = parser.parse_args(argv)
    try:
        settings = OperatorSettings()
    except ValidationError as err:
        raise SystemExit(f"concierge-operator: invalid CONCIERGE_OPERATOR_* settings: {describe_errors(err)}") from None
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Kopf logs every timer tick at INFO; our reconcilers log what they change.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    registry = kopf.OperatorRegistry()
    register(settings, registry)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=True,
            standalone=True,
            liveness_endpoint=args.liveness,
        )
    )
