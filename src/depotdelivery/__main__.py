"""``python -m depotdelivery``: the same CLI as the ``depotdelivery`` console script."""
import sys

from depotdelivery.cli import main

sys.exit(main())
