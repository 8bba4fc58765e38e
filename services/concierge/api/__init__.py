"""Custom resource models of the `concierge.dev/v1alpha1` API: the single source of truth.

The operator, `concierge up` and the CRD generator all parse and validate with these models.
"""

from __future__ import annotations

from concierge.api.resources import (
    API_GROUP,
    API_VERSION,
    Condition,
    EscalationPolicy,
    EscalationPolicySpec,
    KnowledgeBase,
    KnowledgeBaseSpec,
    KnowledgeSource,
    Resource,
    SupportAgent,
    SupportAgentSpec,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "Condition",
    "EscalationPolicy",
    "EscalationPolicySpec",
    "KnowledgeBase",
    "KnowledgeBaseSpec",
    "KnowledgeSource",
    "Resource",
    "SupportAgent",
    "SupportAgentSpec",
]
