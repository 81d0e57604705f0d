"""``python -m nerfocal.cli COMMAND ...`` (also what ``accelerate launch -m nerfocal.cli`` runs)."""

import sys

from nerfocal.cli import main

sys.exit(main())
