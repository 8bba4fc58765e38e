"""The Kopf operator that reconciles KnowledgeBase, SupportAgent and EscalationPolicy.

It imports the API models of the services package (`concierge.api`) and the gRPC stubs, never
a service itself: the retrieval service it syncs through is reached over gRPC.
"""
