"""The route table: which agents each tenant has and where their services listen.

In a cluster the operator publishes it (a ConfigMap in the release namespace, mounted into the
edge), so the edge routes chats to every tenant's agents without any right to the Kubernetes API.
"""

from __future__ import annotations

from pydantic import Field

from concierge.api.resources import AttachmentsSpec, Model, Name, SupportAgent

ROUTES_CONFIGMAP = "concierge-routes"
ROUTES_KEY = "routes.json"


class Route(Model):
    """One agent customers of `tenant` can chat with."""

    tenant: Name = Field(description="Namespace of the SupportAgent.")
    name: Name = Field(description="Name of the SupportAgent.")
    display_name: str = Field(description="Name shown to customers.")
    greeting: str = Field(default="", description="First message shown in a new chat.")
    agent_address: str = Field(min_length=1, description="host:port of the agent's gRPC service.")
    memory_address: str = Field(min_length=1, description="host:port of the tenant's memory service.")
    attachments_enabled: bool = Field(default=True, description="`spec.attachments.enabled`: customers may upload.")
    attachments_max_bytes: int = Field(
        default=AttachmentsSpec().max_bytes, ge=1, description="`spec.attachments.maxBytes`: largest upload in bytes."
    )

    @classmethod
    def of(cls, agent: SupportAgent, *, agent_address: str, memory_address: str) -> Route:
        """The route to `agent`, served at the two addresses."""
        return cls(
            tenant=agent.namespace,
            name=agent.name,
            display_name=agent.spec.display_name,
            greeting=agent.spec.greeting,
            agent_address=agent_address,
            memory_address=memory_address,
            attachments_enabled=agent.spec.attachments.enabled,
            attachments_max_bytes=agent.spec.attachments.max_bytes,
        )


class RouteTable(Model):
    agents: list[Route] = Field(default_factory=list, description="Every ready agent, sorted by tenant and name.")
