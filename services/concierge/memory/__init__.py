"""Memory service: sessions, messages, facts, attachments and hand-offs, in Postgres before acknowledged.

`server.py` wires gRPC; `validation.py` checks requests; `store.py` (sessions, messages), `facts.py`,
`attachments.py`, `handoffs.py` and `privacy.py` hold the SQL; `rows.py` turns rows into messages.
"""
