"""`python -m benchmark` is the same as the `melbench` console script."""

from benchmark.cli import main

raise SystemExit(main())
