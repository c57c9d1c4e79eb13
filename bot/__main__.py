"""``python -m bot``: the ``moviebot`` command (see :mod:`bot.cli`)."""

import signal
import sys


def _stop(signum: int, frame: object) -> None:
    sys.exit(0)  # asked to stop while still importing: nothing to clean up yet


signal.signal(signal.SIGTERM, _stop)
try:
    from bot.cli import main
except KeyboardInterrupt:  # Ctrl-C while still importing
    sys.exit(0)

sys.exit(main())
