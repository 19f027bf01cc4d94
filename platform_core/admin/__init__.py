"""Experiment administration: dashboard, manifests, files, exports, upload and delete."""
