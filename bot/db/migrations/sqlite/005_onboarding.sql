-- Onboarding: imports from Letterboxd and IMDb (with undo), /quickrate's "haven't seen it"
-- answers, and who has seen the one-time welcome line. /forgetme clears all of these.

-- What a member's last import wrote (film and the rating it set), and the ratings it
-- overwrote, so /import undo takes back exactly those (and leaves later ratings alone).
CREATE TABLE import_writes (
    user_id  INTEGER NOT NULL,
    movie_id INTEGER NOT NULL,
    rating   REAL    NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID;

CREATE TABLE import_backups (
    user_id    INTEGER NOT NULL,
    movie_id   INTEGER NOT NULL,
    rating     REAL    NOT NULL,
    guild_id   INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID;

-- Each member's last import (one import per member per IMPORT_COOLDOWN_MINUTES).
CREATE TABLE imports (
    user_id     INTEGER PRIMARY KEY,
    imported_at INTEGER NOT NULL,   -- Unix seconds
    format      TEXT    NOT NULL,
    added       INTEGER NOT NULL,
    replaced    INTEGER NOT NULL,
    unchanged   INTEGER NOT NULL,
    kept        INTEGER NOT NULL,
    undone      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE quickrate_skips (
    user_id    INTEGER NOT NULL,
    movie_id   INTEGER NOT NULL,
    skipped_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID;

CREATE TABLE welcomed (
    user_id    INTEGER PRIMARY KEY,
    welcomed_at INTEGER NOT NULL
) WITHOUT ROWID;
