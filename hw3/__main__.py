"""`python -m hw3` is the `hw3` command."""

from .cli import main

raise SystemExit(main())
