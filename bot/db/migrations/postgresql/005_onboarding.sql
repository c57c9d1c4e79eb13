-- The same tables as migrations/sqlite/005, in PostgreSQL types (BIGINT ids, DOUBLE PRECISION).
-- Onboarding: imports from Letterboxd and IMDb (with undo), /quickrate's "haven't seen it"
-- answers, and who has seen the one-time welcome line. /forgetme clears all of these.

-- What a member's last import wrote (film and the rating it set), and the ratings it
-- overwrote, so /import undo takes back exactly those (and leaves later ratings alone).
CREATE TABLE import_writes (
    user_id  BIGINT NOT NULL,
    movie_id BIGINT NOT NULL,
    rating   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, movie_id)
);

CREATE TABLE import_backups (
    user_id    BIGINT NOT NULL,
    movie_id   BIGINT NOT NULL,
    rating     DOUBLE PRECISION NOT NULL,
    guild_id   BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, movie_id)
);

-- Each member's last import (one import per member per IMPORT_COOLDOWN_MINUTES).
CREATE TABLE imports (
    user_id     BIGINT PRIMARY KEY,
    imported_at BIGINT NOT NULL,   -- Unix seconds
    format      TEXT    NOT NULL,
    added       BIGINT NOT NULL,
    replaced    BIGINT NOT NULL,
    unchanged   BIGINT NOT NULL,
    kept        BIGINT NOT NULL,
    undone      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE quickrate_skips (
    user_id    BIGINT NOT NULL,
    movie_id   BIGINT NOT NULL,
    skipped_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, movie_id)
);

CREATE TABLE welcomed (
    user_id    BIGINT PRIMARY KEY,
    welcomed_at BIGINT NOT NULL
);
