-- /forgetme leaves no member id behind: the change log may hold an anonymous "forget" event.
ALTER TABLE rating_events ALTER COLUMN user_id DROP NOT NULL;
