"""``python -m stafet``: the CLI."""

from stafet.cli.main import main

main()
