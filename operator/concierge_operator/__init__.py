"""The Kopf operator that reconciles KnowledgeBase, SupportAgent and EscalationPolicy.

Placeholder until the Kubernetes issue: it only re-exports the API models it will reconcile,
so the layering (the operator imports `concierge.api` and nothing of the services) holds now.
"""

from __future__ import annotations

from concierge.api import EscalationPolicy, KnowledgeBase, SupportAgent

RECONCILED_KINDS = (KnowledgeBase, SupportAgent, EscalationPolicy)

__all__ = ["RECONCILED_KINDS"]
