from __future__ import annotations

import subprocess
import sys


def test_importing_recommender_does_not_import_discord_or_bot() -> None:
    code = (
        "import importlib, pkgutil, sys, recommender;"
        "[importlib.import_module(m.name) for m in"
        " pkgutil.walk_packages(recommender.__path__, 'recommender.')];"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'discord', 'bot'});"
        "print(len([m for m in sys.modules if m.startswith('recommender.')]), ','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    count, bad = result.stdout.split(" ", 1)
    assert int(count) >= 10  # every module of the package, group.py and report.py included
    assert bad.strip() == ""
