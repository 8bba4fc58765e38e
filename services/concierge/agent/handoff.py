"""Hand-off to humans: mark the session escalated and, for a webhook target, deliver durably.

A webhook call is first written to the memory service's outbox (idempotent on its key), then a
dispatcher leases due deliveries, POSTs them signed with HMAC-SHA256, and records the outcome:
delivered, retried with exponential backoff, or kept as a dead letter after the last attempt.
A restart loses nothing: an unfinished lease simply expires and the delivery is claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from concierge.api.resources import EscalationPolicy, secret_env_var, secret_value
from concierge.v1 import memory_pb2, memory_pb2_grpc

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Concierge-Signature"
TIMESTAMP_HEADER = "X-Concierge-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TRANSCRIPT_MESSAGES = 20
ROLE_NAMES = {
    memory_pb2.ROLE_USER: "customer",
    memory_pb2.ROLE_ASSISTANT: "assistant",
    memory_pb2.ROLE_HUMAN: "human",
    memory_pb2.ROLE_SYSTEM: "system",
}


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the dispatcher tries: attempts, backoff, and how long one POST may take."""

    max_attempts: int = 6
    base_delay_seconds: float = 2.0
    max_delay_seconds: float = 300.0
    timeout_seconds: float = 10.0
    lease_seconds: int = 60

    def retry_in(self, attempts: int) -> int:
        """Seconds before the next try after `attempts` failed ones; 0 when none is left (dead letter)."""
        if attempts >= self.max_attempts:
            return 0
        delay = min(self.max_delay_seconds, self.base_delay_seconds * 2 ** (attempts - 1))
        jittered: int = round(delay * random.uniform(0.8, 1.2))  # spreads the retries of many sessions
        return max(1, jittered)


def idempotency_key(session_id: str, user_message_id: str) -> str:
    """One hand-off per escalating customer message: a retried turn cannot send a second one."""
    return f"escalation:{session_id}:{user_message_id}"


def payload(
    *,
    tenant: str,
    agent: str,
    session: memory_pb2.Session,
    rule: str,
    reason: str,
    transcript: Sequence[memory_pb2.Message],
    key: str,
) -> str:
    """The JSON body a webhook receives: who, why, and the recent conversation."""
    body: dict[str, Any] = {
        "type": "concierge.escalation",
        "idempotencyKey": key,
        "tenant": tenant,
        "agent": agent,
        "sessionId": session.id,
        "customerId": session.customer_id,
        "rule": rule,
        "reason": reason,
        "escalatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "transcript": [
            {"role": ROLE_NAMES.get(m.role, "system"), "text": m.text, "at": m.created_at, "author": m.author}
            for m in list(transcript)[-TRANSCRIPT_MESSAGES:]
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def signature(secret: str, timestamp: str, body: str) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: receivers reject stale or altered calls."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signing_secret(policy: EscalationPolicy | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The webhook's HMAC key from the variable the operator mounts for the policy's secretRef.

    A policy that names a key nobody mounted is logged loudly: its webhooks would go out unsigned."""
    ref = policy.spec.handoff.secret_ref if policy is not None else None
    if ref is None:
        return None
    value = secret_value(ref, environ)
    if value is None:
        log.error(
            "hand-off webhooks of policy %s go out UNSIGNED: its secretRef %s/%s is not mounted as %s",
            policy.key if policy is not None else "?",
            ref.name,
            ref.key,
            secret_env_var(ref),
        )
    return value


class Dispatcher:
    """Delivers the outbox of the tenants this agent service serves, one lease at a time."""

    def __init__(
        self,
        memory: memory_pb2_grpc.MemoryServiceAsyncStub,
        secrets: dict[str, str | None],
        policy: DeliveryPolicy | None = None,
        rpc_timeout: float = 10.0,
    ) -> None:
        # secrets: "tenant/agent" -> HMAC key (None: unsigned) of every agent this service serves; only
        # their deliveries are claimed, so each is signed with its own agent's key.
        self._memory = memory
        self._secrets = secrets
        self._policy = policy or DeliveryPolicy()
        self._rpc_timeout = rpc_timeout
        self._http = httpx.AsyncClient(timeout=self._policy.timeout_seconds, follow_redirects=False)
        self.wake = asyncio.Event()

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, idle_seconds: float = 2.0) -> None:
        """Deliver until cancelled; `wake` cuts the idle wait short after a new escalation."""
        tenants: dict[str, list[str]] = {}
        for key in sorted(self._secrets):
            tenant, agent = key.split("/", 1)
            tenants.setdefault(tenant, []).append(agent)
        while True:
            delivered_any = False
            for tenant, agents in tenants.items():
                try:
                    delivered_any |= await self.deliver_due(tenant, agents)
                except grpc.aio.AioRpcError as err:
                    log.warning("hand-off outbox unavailable tenant=%s code=%s", tenant, err.code().name)
                except Exception:  # the dispatcher outlives any one bad delivery
                    log.exception("hand-off dispatch failed tenant=%s", tenant)
            if not delivered_any:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), idle_seconds)

    async def deliver_due(self, tenant: str, agents: Sequence[str], limit: int = 10) -> bool:
        """Claim and attempt the due deliveries of this dispatcher's agents; True when there were any."""
        claimed = await self._memory.ClaimHandoffs(
            memory_pb2.ClaimHandoffsRequest(
                tenant=tenant, agents=list(agents), limit=limit, lease_seconds=self._policy.lease_seconds
            ),
            timeout=self._rpc_timeout,
        )
        await asyncio.gather(*(self._attempt(tenant, h) for h in claimed.handoffs))
        return bool(claimed.handoffs)

    async def _attempt(self, tenant: str, handoff: memory_pb2.Handoff) -> None:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: handoff.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
        }
        secret = self._secrets.get(f"{tenant}/{handoff.agent}")
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, timestamp, handoff.payload_json)
        error = ""
        try:
            response = await self._http.post(handoff.url, content=handoff.payload_json.encode(), headers=headers)
            if 200 <= response.status_code < 300:
                await self._finish(tenant, handoff, delivered=True)
                log.info(
                    "hand-off delivered tenant=%s session=%s attempts=%d", tenant, handoff.session_id, handoff.attempts
                )
                return
            error = f"HTTP {response.status_code} from {handoff.url}"
        except httpx.HTTPError as err:
            error = f"{type(err).__name__} calling {handoff.url}: {err}"
        retry_in = self._policy.retry_in(handoff.attempts)
        await self._finish(tenant, handoff, delivered=False, error=error, retry_in=retry_in)
        log.warning(
            "hand-off %s tenant=%s session=%s attempts=%d error=%s",
            f"retry in {retry_in}s" if retry_in else "dead-lettered",
            tenant,
            handoff.session_id,
            handoff.attempts,
            error,
        )

    async def _finish(
        self, tenant: str, handoff: memory_pb2.Handoff, *, delivered: bool, error: str = "", retry_in: int = 0
    ) -> None:
        await self._memory.FinishHandoff(
            memory_pb2.FinishHandoffRequest(
                tenant=tenant,
                handoff_id=handoff.id,
                delivered=delivered,
                error=error[:1000],
                retry_in_seconds=retry_in,
            ),
            timeout=self._rpc_timeout,
        )
