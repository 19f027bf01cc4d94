"""Experiments as plug-ins: discovery, manifests, registration, access, scoped data, actors.

The app core does ``ExperimentService(app)``, includes ``service.router`` and awaits
``service.startup()``/``shutdown()``. Experiment code uses the dependencies in
:mod:`platform_core.experiments.deps` (``get_experiment_db``, ``render_experiment``...).
"""

from platform_core.experiments.service import ExperimentService, ServiceStrategies

__all__ = ["ExperimentService", "ServiceStrategies"]
