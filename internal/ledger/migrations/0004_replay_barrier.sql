-- A retry is answered from the stored row only after a write of its own
-- commits: stamping replayed_at. That commit waits for a synchronous standby
-- whenever commits do (RPO 0, or a writer held to its bound on loss), and
-- comes after the original's in the WAL, so no answer acknowledges a row the
-- standby may lack (an original whose wait for the standby was cancelled is
-- committed locally only).
ALTER TABLE payments ADD COLUMN replayed_at timestamptz;
