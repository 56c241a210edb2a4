"""`python -m scanner` is the `ghostport` command."""

from scanner.cli import ghostport_main

raise SystemExit(ghostport_main())
