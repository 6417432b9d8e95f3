"""``python -m signals_crm``: the ``signals-crm`` command line."""

import sys

from signals_crm.cli import main

sys.exit(main())
