"""Experiment exports: exact collection ownership, ZIP building, logs and cleanup."""

from platform_core.export.manager import ExportError, ExportManager, ExportResult

__all__ = ["ExportError", "ExportManager", "ExportResult"]
