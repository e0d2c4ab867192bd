"""Start-up checks of what the apps registered (workers.registry): a configured queue no app runs, or
no dead-letter store, would lose jobs quietly."""
from __future__ import annotations

from django.core import checks

from workers import registry


@checks.register()
def registry_complete(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [checks.Error(problem, id="workers.E001") for problem in registry.missing()]
