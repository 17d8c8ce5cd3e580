-- The ledger: one row per payment, payment_id is the idempotency arbiter.
CREATE TABLE payments (
    payment_id     text        PRIMARY KEY CHECK (payment_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    amount_minor   bigint      NOT NULL CHECK (amount_minor > 0),
    currency       text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    session_id     text,
    region         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    request_sha256 bytea       NOT NULL CHECK (octet_length(request_sha256) = 32),
    response_body  bytea       NOT NULL
);

CREATE INDEX payments_session_id ON payments (session_id) WHERE session_id IS NOT NULL;
