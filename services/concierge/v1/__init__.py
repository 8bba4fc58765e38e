"""Generated gRPC stubs for package concierge.v1 (scripts/gen_proto.py)."""
