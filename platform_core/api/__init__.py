"""Core HTTP routes grouped per resource (home pages, admin users)."""
