"""Scheduled monitoring: per-model drift, prediction-drift and performance checks over captures.

:func:`run_check` is what the ``drift`` Lambda runs on its schedule and what
``driftline drift check`` runs on demand.
"""

from driftline.monitoring.check import Context, MonitoringError, run_check

__all__ = ["Context", "MonitoringError", "run_check"]
