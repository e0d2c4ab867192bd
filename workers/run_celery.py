"""`python -m workers.run_celery worker ...`: Celery's `celery -A resilience worker ...` without the rest
of Celery's command line.

The `celery` program imports every subcommand and plugin before it runs one: the interactive shell's
prompt_toolkit, and Flower (a `celery flower` plugin) with Tornado. A worker's main process would
carry them for nothing and every pool child would inherit them: 12 MB more per worker, measured.
This runs Celery's own `worker` command, with the same options, on this project's app
(settings.WORKERS_CELERY_APP).
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    from resilience.env import load_settings_or_exit
    from workers.celery_app import celery_app

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    load_settings_or_exit()  # a bad setting stops the worker in one line, before the app is looked up
    app = celery_app()
    if not argv or argv[0] != "worker":
        sys.exit("usage: python -m workers.run_celery worker [celery worker options]")
    worker.params.extend(app.user_options.get("worker", []))  # as the celery command does
    worker.main(args=argv[1:], prog_name="celery worker",
                obj=CLIContext(app=app, no_color=None, workdir=None, quiet=False))


if __name__ == "__main__":
    main(sys.argv[1:])
