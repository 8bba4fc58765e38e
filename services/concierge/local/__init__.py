"""The laptop runner: embedded Postgres, service processes on loopback, `concierge up`.

Tests use the same pieces to start real services, so the laptop and CI share one code path.
"""
