-- The event outbox is the payments table itself: a payment commits with its
-- PaymentProcessed event unpublished (NULL), in the same row, and the
-- processor stamps the row once the event bus accepts the event. Sweepers in
-- either region send what is left unstamped.
ALTER TABLE payments ADD COLUMN event_published_at timestamptz;

-- Payments recorded before the outbox existed had their one attempt at the
-- time; they are not sent again.
UPDATE payments SET event_published_at = created_at;

CREATE INDEX payments_event_unpublished ON payments (created_at) WHERE event_published_at IS NULL;
