-- /forgetme leaves no member id behind: the change log may hold an anonymous "forget" event
-- (user_id NULL), which still tells the scheduler that the model must be refitted.
-- Rebuilt because SQLite cannot drop a NOT NULL constraint; the id sequence carries over, so
-- new events always get ids above the ones fits have already covered.
CREATE TABLE rating_events_new (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id  INTEGER,            -- NULL for the anonymous event /forgetme leaves
    movie_id INTEGER,            -- NULL when all of a member's ratings were removed at once
    kind     TEXT    NOT NULL CHECK (kind IN ('rate', 'unrate', 'forget')),
    at       INTEGER NOT NULL
);

INSERT INTO sqlite_sequence (name, seq)
SELECT 'rating_events_new', COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'rating_events';

INSERT INTO rating_events_new (id, user_id, movie_id, kind, at)
SELECT id, user_id, movie_id, kind, at FROM rating_events;

DROP TABLE rating_events;

ALTER TABLE rating_events_new RENAME TO rating_events;
