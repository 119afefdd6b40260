"""Liveness defaults, importable without Optuna (the command line shows them in its help)."""

DEFAULT_HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
DEFAULT_GRACE_PERIOD = 30  # a running trial silent this long is stale
