"""Memory service: sessions and messages stored in Postgres before they are acknowledged.

`server.py` wires gRPC; `validation.py` checks requests; `store.py` holds the SQL.
"""
