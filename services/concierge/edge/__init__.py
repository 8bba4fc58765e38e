"""The edge: REST + WebSocket API for customers, in front of the agent and memory services."""
