"""Agent service: runs a SupportAgent's turn with Microsoft Agent Framework and streams events.

`server.py` wires gRPC; `chat.py` runs a turn; `extractive.py` is the offline model's logic.
"""
