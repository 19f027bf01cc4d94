"""Platform authentication: session tokens, password hashing, login/logout/register."""

from platform_core.auth.models import CurrentUser

__all__ = ["CurrentUser"]
