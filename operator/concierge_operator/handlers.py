"""Kopf handlers: each one is a thin trigger for a level-based reconcile in `reconcile.py`.

Progress and the last handled spec are kept in `concierge.dev/` annotations, events are posted
only for warnings, and timers write only when a resource needs attention or an owned object
drifted, so an idle cluster sees no writes from the operator.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import grpc
import kopf
import psycopg

from concierge.api.resources import API_GROUP, EscalationPolicy, KnowledgeBase, SupportAgent
from concierge.db import migrate
from concierge_operator.kube import VERSION, Kube, load_client_config
from concierge_operator.reconcile import Busy, NotReady, Reconciler, alive, sync_due
from concierge_operator.settings import OperatorSettings
from concierge_operator.status import is_true

FINALIZER = f"{API_GROUP}/cleanup"
KB = (API_GROUP, VERSION, KnowledgeBase.PLURAL)
AGENT = (API_GROUP, VERSION, SupportAgent.PLURAL)
POLICY = (API_GROUP, VERSION, EscalationPolicy.PLURAL)
AGENT_DEPLOYMENTS = {"app.kubernetes.io/component": "agent", "app.kubernetes.io/managed-by": "concierge-operator"}


def required(namespace: str | None) -> str:
    """The namespace of a namespaced resource (Kopf types it optional for cluster-scoped ones)."""
    if namespace is None:
        raise kopf.PermanentError("a Concierge resource without a namespace")
    return namespace


def register(settings: OperatorSettings, registry: kopf.OperatorRegistry) -> None:
    """Register every handler; the reconciler is built at start-up, once the API client is configured."""
    state: dict[str, Reconciler] = {}

    def reconciler() -> Reconciler:
        return state["reconciler"]

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod, the service account; elsewhere, KUBECONFIG: the same as the API client below."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=API_GROUP, key="last-handled-configuration"
        )
        # Warnings and errors (of kopf and of ours) become Events on the resource concerned.
        settings.posting.level = logging.WARNING
        settings.posting.loggers = True
        settings.execution.max_workers = 8
        reconciler = Reconciler(Kube(load_client_config()), operator_settings)
        state["reconciler"] = reconciler
        # Tenant services connect with logins that may not change the schema: migrate here.
        try:
            applied = migrate(reconciler.owner_database_url())
            logging.getLogger("concierge.operator").info("database migrated applied=%d", len(applied))
        except (NotReady, psycopg.Error) as err:
            logging.getLogger("concierge.operator").warning("database not migrated yet: %s", err)
        # Agents deleted while the operator was down leave the route table stale until now.
        state["reconciler"].publish_routes()

    operator_settings = settings
    retry = settings.retry_seconds

    # --- KnowledgeBase ---------------------------------------------------------------

    @kopf.on.resume(*KB, registry=registry)
    @kopf.on.create(*KB, registry=registry)
    @kopf.on.update(*KB, registry=registry)
    def knowledge_base_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconciler().reconcile_knowledge_base(required(namespace), name)

    @kopf.timer(*KB, interval=retry, initial_delay=retry, registry=registry)
    def knowledge_base_due(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        """Sync again when the refresh interval passed, or a sync or a reference failed (reads nothing otherwise)."""
        status = dict(body.get("status") or {})
        if alive(dict(body)) and (sync_due(dict(body)) or not is_true(status.get("conditions") or [], "Ready")):
            with contextlib.suppress(Busy):
                reconciler().reconcile_knowledge_base(required(namespace), name, wait=False)

    @kopf.on.delete(*KB, registry=registry)
    def knowledge_base_deleted(namespace: str | None, name: str, logger: kopf.Logger, **_: Any) -> None:
        """Delete the knowledge base's rows before the object goes (the finalizer holds it until then)."""
        try:
            deleted = reconciler().delete_knowledge_base(required(namespace), name)
        except grpc.RpcError as err:
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            raise kopf.TemporaryError(f"cannot delete the stored documents yet: {details}", delay=retry) from err
        logger.info("deleted %d documents of %s/%s", deleted, namespace, name)

    @kopf.timer(*KB, interval=settings.resync_seconds, initial_delay=settings.resync_seconds, registry=registry)
    def knowledge_base_resync(namespace: str | None, name: str, **_: Any) -> None:
        """Re-apply the tenant's objects now and then: repairs hand edits and mounts newly labelled sources.
        Writes only what drifted."""
        with contextlib.suppress(Busy):
            reconciler().reconcile_knowledge_base(required(namespace), name, wait=False)

    # --- EscalationPolicy ------------------------------------------------------------

    @kopf.on.resume(*POLICY, registry=registry)
    @kopf.on.create(*POLICY, registry=registry)
    @kopf.on.update(*POLICY, registry=registry)
    def policy_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconciler().reconcile_policy(required(namespace), name)

    @kopf.on.delete(*POLICY, optional=True, registry=registry)
    def policy_deleted(namespace: str | None, name: str, **_: Any) -> None:
        reconciler().reconcile_dependents(required(namespace), "escalationPolicy", name)

    @kopf.timer(*POLICY, interval=retry, initial_delay=retry, registry=registry)
    def policy_not_ready(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        if alive(dict(body)) and not is_true(dict(body.get("status") or {}).get("conditions") or [], "Ready"):
            with contextlib.suppress(Busy):
                reconciler().reconcile_policy(required(namespace), name, wait=False)

    # --- SupportAgent ----------------------------------------------------------------

    @kopf.on.resume(*AGENT, registry=registry)
    @kopf.on.create(*AGENT, registry=registry)
    @kopf.on.update(*AGENT, registry=registry)
    def agent_changed(namespace: str | None, name: str, **_: Any) -> None:
        reconciler().reconcile_agent(required(namespace), name)

    @kopf.on.delete(*AGENT, optional=True, registry=registry)
    def agent_deleted(**_: Any) -> None:
        """The GC removes what the agent owned; the route table must drop it now."""
        reconciler().publish_routes()

    @kopf.timer(*AGENT, interval=retry, initial_delay=retry, registry=registry)
    def agent_not_ready(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        """Retry an agent whose references (a Secret, say) were missing; nothing to do for a ready one."""
        status = dict(body.get("status") or {})
        generation = body.get("metadata", {}).get("generation")
        if alive(dict(body)) and not is_true(status.get("conditions") or [], "Ready", generation):
            with contextlib.suppress(Busy):
                reconciler().reconcile_agent(required(namespace), name, wait=False)

    @kopf.timer(*AGENT, interval=settings.resync_seconds, initial_delay=settings.resync_seconds, registry=registry)
    def agent_resync(namespace: str | None, name: str, **_: Any) -> None:
        """Re-apply the agent's objects now and then; writes only what drifted."""
        with contextlib.suppress(Busy):
            reconciler().reconcile_agent(required(namespace), name, wait=False)

    @kopf.on.event("apps", "v1", "deployments", labels=AGENT_DEPLOYMENTS, registry=registry)
    def agent_deployment_event(body: kopf.Body, namespace: str | None, **_: Any) -> None:
        agent = body.get("metadata", {}).get("labels", {}).get("concierge.dev/agent")
        if agent and namespace:
            ready = int(dict(body.get("status") or {}).get("readyReplicas") or 0)
            reconciler().record_ready_replicas(namespace, agent, ready)
