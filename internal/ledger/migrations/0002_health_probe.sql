-- One row per region, rewritten by every health check: a committed write is
-- the only honest proof that this database accepts writes. probed_at also
-- shows, on the other region's replica, how far replication has come.
CREATE TABLE health_probe (
    region    text        PRIMARY KEY,
    probed_at timestamptz NOT NULL
);
