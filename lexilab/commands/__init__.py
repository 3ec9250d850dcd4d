"""CLI subcommands, one module each (see lexilab/cli.py)."""
