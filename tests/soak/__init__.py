"""Soak runs: load and recovery under real workers and a real Redis (make soak)."""
