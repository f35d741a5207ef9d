"""``python -m lens_odesteer`` runs the command line."""

from lens_odesteer.cli import main

raise SystemExit(main())
