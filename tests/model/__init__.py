"""A property-based model check: random workflow programs, a reference interpreter, and
the real engine on real workers (see README.md)."""
