from __future__ import annotations

import subprocess
import sys


def test_importing_recommender_does_not_import_discord_or_bot() -> None:
    code = (
        "import sys, recommender, recommender.evaluation, recommender.baselines;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'discord', 'bot'});"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
