-- Movie night: a server's nights, who was in each, the picks, the votes, how well each winner
-- suited each member (for fairness across nights), the watched list, and members' dismissals.
-- /forgetme removes a member from all of these (docs/reliability.md lists what happens where).

CREATE TABLE movie_nights (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,
    message_id  INTEGER,             -- the lobby or vote message, once sent
    started_by  INTEGER,             -- NULL after that member's /forgetme
    source      TEXT    NOT NULL CHECK (source IN ('voice', 'lobby', 'console')),
    state       TEXT    NOT NULL CHECK (state IN ('lobby', 'voting', 'closed', 'cancelled')),
    created_at  INTEGER NOT NULL,    -- Unix seconds
    closes_at   INTEGER NOT NULL,    -- when the lobby or the vote closes by itself
    count       INTEGER NOT NULL,    -- how many picks to offer
    genre       TEXT,
    left_out    INTEGER NOT NULL DEFAULT 0,  -- members beyond the group size limit
    candidates  INTEGER NOT NULL DEFAULT 0,  -- films the picks were ranked among
    winner      INTEGER              -- movie id, once closed
);

-- At most one open night per channel.
CREATE UNIQUE INDEX movie_nights_open_per_channel
    ON movie_nights (channel_id) WHERE state IN ('lobby', 'voting');
CREATE INDEX movie_nights_due ON movie_nights (closes_at) WHERE state IN ('lobby', 'voting');

CREATE TABLE night_members (
    night_id INTEGER NOT NULL REFERENCES movie_nights (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL,
    PRIMARY KEY (night_id, user_id)
) WITHOUT ROWID;

CREATE TABLE night_picks (
    night_id   INTEGER NOT NULL REFERENCES movie_nights (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,     -- 1-based, in the order shown
    movie_id   INTEGER NOT NULL,
    score      REAL    NOT NULL,     -- the group score (ranks; never stars)
    best_rank  INTEGER NOT NULL,
    worst_rank INTEGER NOT NULL,
    PRIMARY KEY (night_id, position)
) WITHOUT ROWID;

CREATE TABLE night_votes (
    night_id INTEGER NOT NULL REFERENCES movie_nights (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL,
    position INTEGER NOT NULL,
    voted_at INTEGER NOT NULL,
    PRIMARY KEY (night_id, user_id)
) WITHOUT ROWID;

-- How well a night's winner suited each member there (0 = their worst candidate, 1 = best).
CREATE TABLE night_satisfaction (
    night_id     INTEGER NOT NULL REFERENCES movie_nights (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL,
    satisfaction REAL    NOT NULL CHECK (satisfaction >= 0 AND satisfaction <= 1),
    PRIMARY KEY (night_id, user_id)
) WITHOUT ROWID;

-- A server's watched list: nights' winners and films an admin added by hand.
CREATE TABLE watched (
    guild_id   INTEGER NOT NULL,
    movie_id   INTEGER NOT NULL,
    watched_at INTEGER NOT NULL,
    night_id   INTEGER REFERENCES movie_nights (id) ON DELETE SET NULL,
    added_by   INTEGER,              -- who added it by hand (NULL for a winner, or after /forgetme)
    PRIMARY KEY (guild_id, movie_id)
) WITHOUT ROWID;

-- "Not interested": films a member never wants recommended.
CREATE TABLE dismissals (
    user_id      INTEGER NOT NULL,
    movie_id     INTEGER NOT NULL,
    dismissed_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, movie_id)
) WITHOUT ROWID;
