-- Chat members' ratings: one row per member and movie; a re-rating overwrites.
CREATE TABLE ratings (
    user_id    INTEGER NOT NULL,
    movie_id   INTEGER NOT NULL,
    rating     REAL    NOT NULL
               CHECK (rating >= 0.5 AND rating <= 5.0 AND rating * 2 = CAST(rating * 2 AS INTEGER)),
    guild_id   INTEGER,
    created_at INTEGER NOT NULL,  -- Unix seconds
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID;

CREATE INDEX ratings_by_guild ON ratings (guild_id);

-- Every add, change and removal, so the scheduler knows what changed since the last fit.
CREATE TABLE rating_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id  INTEGER NOT NULL,
    movie_id INTEGER,            -- NULL when all of a member's ratings were removed at once
    kind     TEXT    NOT NULL CHECK (kind IN ('rate', 'unrate', 'forget')),
    at       INTEGER NOT NULL
);

CREATE TABLE model_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger        TEXT    NOT NULL CHECK (trigger IN ('schedule', 'admin', 'startup', 'console')),
    requested_by   INTEGER,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    status         TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    last_event_id  INTEGER NOT NULL DEFAULT 0,  -- rating_events covered by this fit
    n_ratings      INTEGER,
    n_chat_ratings INTEGER,
    n_chat_users   INTEGER,
    seconds        REAL,
    error          TEXT
);
