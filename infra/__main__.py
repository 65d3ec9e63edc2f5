"""``python -m infra`` is the ``nbaml`` console script."""

from infra.cli import main

raise SystemExit(main())
