"""``python -m tunesmith``: the same as the ``tunesmith`` console script."""
import sys

from tunesmith.cli import main

sys.exit(main())
