"""``python -m stepstream.cli``: the same as the ``stepstream`` console script."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
