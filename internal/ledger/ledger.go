// Package ledger is the PostgreSQL (Aurora PostgreSQL in AWS) system of
// record for payments, implementing payment.Ledger over a pgx/v5 pool.
//
// The payments table's primary key on payment_id is the idempotency
// arbiter: Insert runs INSERT ... ON CONFLICT (payment_id) DO NOTHING
// RETURNING and, on conflict, reads the existing row, so concurrent
// duplicates produce one row and every caller sees the same stored record.
// A concurrent duplicate waits for the first insert's transaction to end
// (PostgreSQL's unique-index wait), so it never sees a half-made payment.
// Rows keep the request's fingerprint and the exact response bytes, so a
// retry is answered byte for byte in either region (the table replicates
// with the Aurora global database).
//
// Insert never claims "not recorded" unless it is certain: a failure before
// the INSERT left (no connection, pgx sent nothing) or the server's refusal
// of the statement wraps payment.ErrUnavailable (when the database cannot
// take writes); a failure after it was sent (connection lost, deadline
// passed, session ended by the server, which may follow a local commit
// under synchronous replication) wraps payment.ErrOutcomeUnknown.
//
// Amounts are bigint minor units with a currency code; created_at is a real
// UTC timestamptz chosen by the processor (microsecond precision).
//
// The schema is code: versioned SQL files embedded from migrations/,
// applied in order by Migrate, recorded in schema_migrations, serialized by
// an advisory lock. The processor does not migrate: it connects as an
// application role that can only read and write the ledger's rows, and
// checks before its first write that the schema has every migration it
// needs (CheckSchema). Provision, run as the database's owner, applies the
// migrations and makes that role (paydr up locally; a provisioning function
// in AWS). Tests and tools that own the database may set Options.Migrate.
//
// Opening a Ledger does not touch the network; the pool connects on first
// use, so a Lambda's init stays cheap.
package ledger

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"paydr/internal/payment"
)

// Credentials returns the user and password to connect with; it is called
// before each new connection, so rotated secrets are picked up.
type Credentials func(ctx context.Context) (user, password string, err error)

// Options configure a Ledger.
type Options struct {
	// DSN is a PostgreSQL connection string (URL or key=value).
	DSN string
	// Host, when set, replaces the DSN's host (the health check's own
	// cluster endpoint with a shared DSN).
	Host string
	// Credentials, when set, override the DSN's user and password.
	Credentials Credentials
	// Region is this processor's region, the key of its health_probe row.
	Region string
	// MaxConns bounds the pool (default 4).
	MaxConns int32
	// Migrate makes the first write apply missing migrations, as the
	// database's owner, instead of refusing with a *SchemaError: for tests
	// and tools. The processor never sets it.
	Migrate bool
	// CAFile, when set, is a PEM bundle of the certificate authorities the
	// server's certificate must chain to; every connection then uses TLS and
	// verifies the server's name against the host it dials (libpq's
	// sslmode=verify-full), whatever the DSN's sslmode says, and never falls
	// back to plaintext.
	CAFile string
}

// Ledger is a payment.Ledger on PostgreSQL. It is safe for concurrent use.
type Ledger struct {
	pool        *pgxpool.Pool
	region      string
	autoMigrate bool
	migrated    atomic.Bool // the schema was found, or made, complete
	migrate     sync.Mutex
}

var _ payment.Ledger = (*Ledger)(nil)

// Open returns a Ledger for opts without connecting.
func Open(opts Options) (*Ledger, error) {
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("ledger: parse dsn: %w", err)
	}
	if opts.Host != "" {
		cfg.ConnConfig.Host = opts.Host
		cfg.ConnConfig.Fallbacks = nil
		if t := cfg.ConnConfig.TLSConfig; t != nil && t.ServerName != "" {
			t = t.Clone() // verify the host dialled, not the DSN's
			t.ServerName = opts.Host
			cfg.ConnConfig.TLSConfig = t
		}
	}
	if opts.CAFile != "" {
		t, err := VerifyFull(opts.CAFile, cfg.ConnConfig.Host)
		if err != nil {
			return nil, err
		}
		cfg.ConnConfig.TLSConfig = t
		cfg.ConnConfig.Fallbacks = nil
	}
	cfg.MaxConns = 4
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 5 * time.Minute
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if creds := opts.Credentials; creds != nil {
		cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			user, pass, err := creds(ctx)
			if err != nil {
				return fmt.Errorf("ledger: credentials: %w", err)
			}
			cc.User, cc.Password = user, pass
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger: open pool: %w", err)
	}
	return &Ledger{pool: pool, region: opts.Region, autoMigrate: opts.Migrate}, nil
}

// VerifyFull returns the TLS configuration of libpq's sslmode=verify-full
// for host: the server's certificate must chain to a certificate authority
// of the PEM bundle caFile and name host (a DNS name or an IP address).
func VerifyFull(caFile, host string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ledger: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ledger: CA bundle %s holds no PEM certificate", caFile)
	}
	if host == "" || strings.HasPrefix(host, "/") {
		return nil, fmt.Errorf("ledger: TLS with CA bundle %s needs a TCP host to verify, not %q", caFile, host)
	}
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}

// Close closes the pool.
func (l *Ledger) Close() { l.pool.Close() }

// ensureSchema checks, once per process before the first write, that the
// schema has every migration (CheckSchema); with Options.Migrate it applies
// the missing ones instead.
func (l *Ledger) ensureSchema(ctx context.Context) error {
	if l.migrated.Load() {
		return nil
	}
	l.migrate.Lock()
	defer l.migrate.Unlock()
	if l.migrated.Load() {
		return nil
	}
	if l.autoMigrate {
		_, err := l.Migrate(ctx)
		return err
	}
	if err := l.CheckSchema(ctx); err != nil {
		return err
	}
	l.migrated.Store(true)
	return nil
}

const columns = `payment_id, amount_minor, currency, coalesce(session_id, ''), region, created_at, request_sha256, response_body`

// Insert stores rec unless its payment_id exists and returns the stored
// record; see payment.Ledger. A stored record of the same request is
// returned only after a write of Insert's own commits (replayed_at), so it
// is as durable as a new payment would be: under synchronous replication,
// on the standby. It tells "not recorded" from "outcome
// unknown": an error before the INSERT left (no connection could be had,
// pgx sent nothing) or the server's refusal of the statement itself (read
// only, in recovery) is as mapErr says, wrapping payment.ErrUnavailable
// when the database cannot take writes; any error after the INSERT was sent
// (connection lost, deadline passed, the session ended by the server) wraps
// payment.ErrOutcomeUnknown, because the commit may have happened.
func (l *Ledger) Insert(ctx context.Context, rec payment.Record) (payment.Record, bool, error) {
	if err := l.ensureSchema(ctx); err != nil {
		return payment.Record{}, false, fmt.Errorf("ledger: insert %s: %w", rec.PaymentID, err)
	}
	var session *string
	if rec.SessionID != "" {
		session = &rec.SessionID
	}
	// Acquire first, so a failure to connect (or a deadline passing while
	// waiting for a connection) is known to precede the INSERT.
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return payment.Record{}, false, mapErr("insert "+rec.PaymentID+": acquire a connection", err)
	}
	defer conn.Release()
	var createdAt time.Time
	err = conn.QueryRow(ctx, `INSERT INTO payments (payment_id, amount_minor, currency, session_id, region, created_at, request_sha256, response_body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (payment_id) DO NOTHING
		RETURNING created_at`,
		rec.PaymentID, rec.AmountMinor, rec.Currency, session, rec.Region, rec.CreatedAt.UTC(), rec.Fingerprint[:], rec.Response,
	).Scan(&createdAt)
	switch {
	case err == nil:
		rec.CreatedAt = createdAt.UTC()
		return rec, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return payment.Record{}, false, insertErr("insert "+rec.PaymentID, err)
	}
	// A conflict: the payment_id is recorded, by an earlier request. Until
	// its row is read, whether it is this payment is unknown.
	stored, found, err := get(ctx, conn, rec.PaymentID)
	if err != nil {
		return payment.Record{}, false, fmt.Errorf("ledger: insert %s: read the existing row: %w: %w", rec.PaymentID, payment.ErrOutcomeUnknown, err)
	}
	if !found {
		return payment.Record{}, false, fmt.Errorf("ledger: insert %s: conflicting row vanished", rec.PaymentID)
	}
	if stored.Fingerprint == rec.Fingerprint {
		// The answer will acknowledge the stored row: first make it as
		// durable as a new commit (migration 0004).
		if _, err := conn.Exec(ctx, `UPDATE payments SET replayed_at = now() WHERE payment_id = $1`, rec.PaymentID); err != nil {
			return payment.Record{}, false, fmt.Errorf("ledger: insert %s: replay barrier: %w: %w", rec.PaymentID, payment.ErrOutcomeUnknown, err)
		}
	}
	return stored, false, nil
}

// insertErr wraps an error of the INSERT statement, which pgx was given.
// When pgx sent nothing (pgconn.SafeToRetry) or the server failed the
// statement itself (an ERROR: the implicit transaction rolled back), the
// payment is not recorded and mapErr decides. Anything else may have come
// after the commit and wraps payment.ErrOutcomeUnknown: a lost connection or
// a passed deadline (pgx closes the connection on it), a result that could
// not be read, or a FATAL ending the session, which PostgreSQL sends, for
// one, when it terminates a backend whose commit waits for a synchronous
// standby and "has already committed locally".
func insertErr(op string, err error) error {
	var pgErr *pgconn.PgError
	if pgconn.SafeToRetry(err) || errors.As(err, &pgErr) && !sessionEnding(pgErr) {
		return mapErr(op, err)
	}
	return fmt.Errorf("ledger: %s: %w: %w", op, payment.ErrOutcomeUnknown, err)
}

// sessionEnding reports whether the server error ends the session (FATAL,
// PANIC) rather than the statement (ERROR).
func sessionEnding(e *pgconn.PgError) bool {
	sev := e.SeverityUnlocalized
	if sev == "" {
		sev = e.Severity
	}
	return sev == "FATAL" || sev == "PANIC"
}

// MarkPublished stamps paymentID's event as published; see payment.Ledger.
func (l *Ledger) MarkPublished(ctx context.Context, paymentID string) error {
	_, err := l.pool.Exec(ctx, `UPDATE payments SET event_published_at = now() WHERE payment_id = $1 AND event_published_at IS NULL`, paymentID)
	if err != nil {
		return mapErr("mark "+paymentID+" published", err)
	}
	return nil
}

// PublishUnpublished publishes pending events oldest first; see
// payment.Ledger. The rows are claimed with SELECT ... FOR UPDATE SKIP
// LOCKED in one transaction that stays open while publish runs, so a
// concurrent sweeper skips them; those published are marked in one update,
// committed even when a later publish fails.
func (l *Ledger) PublishUnpublished(ctx context.Context, before time.Time, limit int, publish func(context.Context, payment.Payment) error) (int, error) {
	if err := l.ensureSchema(ctx); err != nil {
		return 0, fmt.Errorf("ledger: publish unpublished: %w", err)
	}
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return 0, mapErr("publish unpublished", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM payments
		WHERE event_published_at IS NULL AND created_at < $1
		ORDER BY created_at, payment_id LIMIT $2
		FOR UPDATE SKIP LOCKED`, before.UTC(), limit)
	if err != nil {
		return 0, mapErr("publish unpublished", err)
	}
	pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Payment, error) {
		rec, err := scanRecord(r)
		return rec.Payment, err
	})
	if err != nil {
		return 0, mapErr("publish unpublished", err)
	}
	var published []string
	var pubErr error
	for _, p := range pending {
		if pubErr = publish(ctx, p); pubErr != nil {
			break
		}
		published = append(published, p.PaymentID)
	}
	if len(published) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE payments SET event_published_at = now() WHERE payment_id = ANY($1)`, published); err != nil {
			return 0, mapErr("mark published", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, mapErr("publish unpublished: commit", err)
	}
	return len(published), pubErr
}

// Get returns the record stored for paymentID; see payment.Ledger.
func (l *Ledger) Get(ctx context.Context, paymentID string) (payment.Record, bool, error) {
	return get(ctx, l.pool, paymentID)
}

// querier is a pool or one of its connections.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func get(ctx context.Context, q querier, paymentID string) (payment.Record, bool, error) {
	rec, err := scanRecord(q.QueryRow(ctx, `SELECT `+columns+` FROM payments WHERE payment_id = $1`, paymentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return payment.Record{}, false, nil
	}
	if err != nil {
		return payment.Record{}, false, mapErr("get "+paymentID, err)
	}
	return rec, true, nil
}

func scanRecord(row pgx.Row) (payment.Record, error) {
	var rec payment.Record
	var fp []byte
	if err := row.Scan(&rec.PaymentID, &rec.AmountMinor, &rec.Currency, &rec.SessionID, &rec.Region, &rec.CreatedAt, &fp, &rec.Response); err != nil {
		return payment.Record{}, err
	}
	if len(fp) != len(rec.Fingerprint) {
		return payment.Record{}, fmt.Errorf("fingerprint of %s has %d bytes", rec.PaymentID, len(fp))
	}
	copy(rec.Fingerprint[:], fp)
	rec.CreatedAt = rec.CreatedAt.UTC()
	if rec.Response == nil {
		rec.Response = []byte{}
	}
	return rec, nil
}

// Payments returns every payment in the ledger ordered by payment_id, for
// drills and tests that reconcile what was acknowledged with what is stored.
func (l *Ledger) Payments(ctx context.Context) ([]payment.Payment, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+columns+` FROM payments ORDER BY payment_id`)
	if err != nil {
		return nil, mapErr("list payments", err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment.Payment, error) {
		rec, err := scanRecord(r)
		return rec.Payment, err
	})
	if err != nil {
		return nil, mapErr("list payments", err)
	}
	return recs, nil
}

// Totals returns the number of payments and the sum of their amounts in
// minor units, per currency: the conservation check of a drill.
func (l *Ledger) Totals(ctx context.Context) (map[string]Total, error) {
	// numeric sum, checked into int64 in SQL: an overflow is an error, not a wrap.
	rows, err := l.pool.Query(ctx, `SELECT currency, count(*), sum(amount_minor)::numeric::bigint FROM payments GROUP BY currency ORDER BY currency`)
	if err != nil {
		return nil, mapErr("totals", err)
	}
	out := map[string]Total{}
	var cur string
	var t Total
	_, err = pgx.ForEachRow(rows, []any{&cur, &t.Count, &t.AmountMinor}, func() error {
		out[cur] = t
		return nil
	})
	if err != nil {
		return nil, mapErr("totals", err)
	}
	return out, nil
}

// Total is the count and sum of the payments in one currency.
type Total struct {
	Count       int64
	AmountMinor int64
}

// Writable reports whether this database accepts writes, by committing an
// upsert of this region's health_probe row. It deliberately does not ask
// pg_is_in_recovery() or default_transaction_read_only: a real write also
// catches a fenced database (read-only by setting, revoked privileges), a
// replica, or a commit that cannot complete. A database that answers but
// refuses the write gives false and a nil error; one that cannot be reached
// gives false and the error.
func (l *Ledger) Writable(ctx context.Context) (bool, error) {
	const probe = `INSERT INTO health_probe (region, probed_at) VALUES ($1, now())
		ON CONFLICT (region) DO UPDATE SET probed_at = excluded.probed_at`
	_, err := l.pool.Exec(ctx, probe, l.region)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" && l.autoMigrate { // undefined_table: fresh database
		if err = l.ensureSchema(ctx); err == nil {
			_, err = l.pool.Exec(ctx, probe, l.region)
		}
	}
	if err == nil {
		return true, nil
	}
	if errors.As(err, &pgErr) {
		return false, nil
	}
	return false, mapErr("probe writes", err)
}

// mapErr prefixes err with the operation and marks errors that mean "cannot
// take writes now" with payment.ErrUnavailable.
func mapErr(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("ledger: %s: %w: %w", op, payment.ErrUnavailable, err)
	}
	return fmt.Errorf("ledger: %s: %w", op, err)
}

func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "25006", // read_only_sql_transaction
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, cannot connect now
			len(pgErr.Code) == 5 && pgErr.Code[:2] == "08", // connection exception
			pgErr.Code == "53300":                          // too_many_connections
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err)
}
