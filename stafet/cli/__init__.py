"""The ``stafet`` command line (typer): an entry point, like ``prefect.yaml``.

May import everything, ``flows`` included (``stafet run``); nothing imports the CLI.
``main.py`` holds the app and the day-to-day commands; the other modules register theirs.
"""
