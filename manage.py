#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    from resilience.env import exit_on_config_error

    from django.core.management import execute_from_command_line

    with exit_on_config_error():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
