"""`python -m tests.fake_telegram`: the fake Bot API as a process of its own."""

import sys

from tests.fake_telegram.server import main

sys.exit(main())
