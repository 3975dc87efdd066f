"""``python -m ascend`` runs the command line."""

import sys

from ascend.cli import main

sys.exit(main())
