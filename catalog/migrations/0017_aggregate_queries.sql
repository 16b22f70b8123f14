-- Published aggregates: a saved query's AggregateRule (JSON), or NULL for an ordinary query.
ALTER TABLE saved_queries ADD COLUMN aggregate TEXT;
