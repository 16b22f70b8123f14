-- SEMAR's lookups by call (a call's dispatches, read at every queued decision) and by the
-- sender of an SMS (the registered resident behind a phone number).
CREATE INDEX semar_dispatches_call ON semar_dispatches (call_id, assigned_at);
CREATE INDEX semar_residents_telepon ON semar_residents (telepon);
