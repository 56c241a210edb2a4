"""`python -m scanner` is the `ghostport` command."""

from scanner.cli import ghostport_entry

ghostport_entry()
