"""`concierge serve edge`: the FastAPI app under uvicorn."""

from __future__ import annotations

import uvicorn

from concierge.common import logs
from concierge.common.settings import load
from concierge.edge.app import create_app
from concierge.edge.settings import EdgeSettings


def run(host: str, port: int) -> None:
    logs.configure("edge")
    settings = load(EdgeSettings, "edge")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ws_ping_interval=20,
        timeout_graceful_shutdown=10,
    )
