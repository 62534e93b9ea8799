"""``python -m simulator.cli``: Slipway's ``docker`` command."""

import sys

from simulator.cli.main import main

sys.exit(main())
