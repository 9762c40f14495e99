"""``python3 -m tas_eval.cli``: the same as the `tas-eval` console script."""

import sys

from tas_eval.cli import main

sys.exit(main())
