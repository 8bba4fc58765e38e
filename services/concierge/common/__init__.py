"""Plumbing shared by every service: gRPC server and channel setup, logging."""
