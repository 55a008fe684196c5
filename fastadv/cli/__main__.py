"""`python -m fastadv.cli ...` (as torchrun runs it): the `fastadv` command."""

import sys

from fastadv.cli import main

sys.exit(main())
