-- Each fit records the model settings it used and, for a tuned fit, the held-out scores behind
-- the choice (JSON), so /retrain and the history can say what was chosen and why.
ALTER TABLE model_runs ADD COLUMN params TEXT;
ALTER TABLE model_runs ADD COLUMN tuning TEXT;
