"""``python -m taskline`` runs the command-line interface."""

from taskline.cli.main import main

main()
