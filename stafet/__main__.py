"""``python -m stafet``: the CLI."""

from stafet.cli import main

main()
