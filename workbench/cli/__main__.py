"""`python -m workbench.cli` runs the command line."""

from . import main

raise SystemExit(main())
