"""Flask blueprints: webhooks (and, later, the run viewer)."""
