"""How long movie-night lobbies and votes stay open (settings the service and the host share)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NightConfig:
    """How long lobbies and votes stay open."""

    lobby_seconds: int = 120
    vote_seconds: int = 6 * 3600
    fairness_nights: int = 10
