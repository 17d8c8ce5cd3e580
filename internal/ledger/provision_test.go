package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"paydr/internal/ledger"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/payment"
)

const (
	appPassword1 = "first-app-password-0123456789"
	appPassword2 = "second-app-password-9876543210"
)

// provisioned is a TLS server whose payments database was provisioned with
// the application role (password appPassword1).
type provisioned struct {
	srv    *pg.Server
	caFile string
	master *ledger.Ledger
}

func provisionDB(t *testing.T) *provisioned {
	t.Helper()
	srv, caFile := pgtest.StartTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	master, err := ledger.Open(ledger.Options{DSN: srv.DSN("payments"), Region: "us-east-1", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Close)
	all, _ := ledger.Migrations()
	applied, err := master.Provision(ctx, ledger.AppUser, appPassword1)
	if err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	if len(applied) != len(all) {
		t.Errorf("Provision() applied %v, want all %d migrations", applied, len(all))
	}
	return &provisioned{srv: srv, caFile: caFile, master: master}
}

// app opens the ledger as the processor does: the application role over
// verify-full TLS.
func (p *provisioned) app(t *testing.T, password string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(ledger.Options{DSN: tlsDSN(p.srv, "127.0.0.1", ledger.AppUser, password, ""), Region: "us-east-1", MaxConns: 2, CAFile: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// conn connects as the application role over verify-full TLS.
func (p *provisioned) conn(ctx context.Context, password string) (*pgx.Conn, error) {
	tlsCfg, err := ledger.VerifyFull(p.caFile, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	cc, err := pgx.ParseConfig(tlsDSN(p.srv, "127.0.0.1", ledger.AppUser, password, ""))
	if err != nil {
		return nil, err
	}
	cc.TLSConfig, cc.Fallbacks = tlsCfg, nil
	return pgx.ConnectConfig(ctx, cc)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestProvisionedRoleCanOnlyUseTheLedger: the application role writes and
// reads payments through the ledger, and every statement beyond that —
// DDL, DELETE, temporary tables, role management — is refused with
// insufficient_privilege (or must-be-owner, the same code).
func TestProvisionedRoleCanOnlyUseTheLedger(t *testing.T) {
	p := provisionDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := p.app(t, appPassword1)
	rec := payment.Record{Payment: payment.Payment{PaymentID: "app-role-1", AmountMinor: 1250, Currency: "USD", Region: "us-east-1", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}, Response: []byte(`{"ok":true}`)}
	if _, inserted, err := l.Insert(ctx, rec); err != nil || !inserted {
		t.Fatalf("Insert as %s = %v, %v; want inserted", ledger.AppUser, inserted, err)
	}
	if _, inserted, err := l.Insert(ctx, rec); err != nil || inserted {
		t.Errorf("Insert again (a retry) = %v, %v; want the stored row replayed", inserted, err)
	}
	if got, found, err := l.Get(ctx, "app-role-1"); err != nil || !found || got.AmountMinor != 1250 {
		t.Errorf("Get as %s = %+v, %v, %v; want the payment of 1250", ledger.AppUser, got, found, err)
	}
	if ok, err := l.Writable(ctx); !ok || err != nil {
		t.Errorf("Writable as %s = %v, %v; want true", ledger.AppUser, ok, err)
	}
	if n, err := l.PublishUnpublished(ctx, time.Now().Add(time.Hour), 10, func(context.Context, payment.Payment) error { return nil }); err != nil || n != 1 {
		t.Errorf("PublishUnpublished as %s = %d, %v; want 1", ledger.AppUser, n, err)
	}
	conn, err := p.conn(ctx, appPassword1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		"CREATE TABLE intruder (id int)",
		"CREATE TEMP TABLE intruder (id int)",
		"DROP TABLE payments",
		"ALTER TABLE payments ADD COLUMN note text",
		"TRUNCATE payments",
		"DELETE FROM payments",
		"CREATE INDEX intruder ON payments (region)",
		"INSERT INTO schema_migrations (version, name) VALUES (9999, 'x')",
		"CREATE ROLE intruder",
		"ALTER ROLE " + ledger.AppUser + " CREATEDB",
		"CREATE SCHEMA intruder",
	} {
		_, err := conn.Exec(ctx, stmt)
		if code := sqlState(err); code != "42501" {
			t.Errorf("%s as %s: error = %v (SQLSTATE %q), want 42501 insufficient_privilege", stmt, ledger.AppUser, err, code)
		}
	}
	var super, createRole, createDB, repl bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &createDB, &repl); err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB || repl {
		t.Errorf("%s: superuser %v, createrole %v, createdb %v, replication %v; want none", ledger.AppUser, super, createRole, createDB, repl)
	}
}

// TestProvisionIsIdempotentAndRotates: a second Provision with the same
// password changes nothing and applies no migration; with another password
// the old one stops working and the new one works.
func TestProvisionIsIdempotentAndRotates(t *testing.T) {
	p := provisionDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if applied, err := p.master.Provision(ctx, ledger.AppUser, appPassword1); err != nil || len(applied) != 0 {
		t.Fatalf("Provision again = %v, %v; want no migration, nil", applied, err)
	}
	if c, err := p.conn(ctx, appPassword1); err != nil {
		t.Fatalf("connect after a second Provision: %v", err)
	} else {
		c.Close(ctx)
	}
	if _, err := p.master.Provision(ctx, ledger.AppUser, appPassword2); err != nil {
		t.Fatalf("Provision(new password) error = %v", err)
	}
	if _, err := p.conn(ctx, appPassword1); sqlState(err) != "28P01" {
		t.Errorf("connect with the old password after rotation: error = %v, want 28P01 invalid_password", err)
	}
	c, err := p.conn(ctx, appPassword2)
	if err != nil {
		t.Fatalf("connect with the new password: %v", err)
	}
	c.Close(ctx)
	if _, _, err := p.app(t, appPassword2).Insert(ctx, payment.Record{Payment: payment.Payment{PaymentID: "after-rotation", AmountMinor: 1, Currency: "EUR", Region: "us-east-1", CreatedAt: time.Now().UTC()}, Response: []byte("{}")}); err != nil {
		t.Errorf("Insert after rotation: %v", err)
	}
}

// TestProvisionRefuses: bad input is refused before anything changes, with
// what is wrong; a role made by hand with more than login is refused with
// what to take away.
func TestProvisionRefuses(t *testing.T) {
	p := provisionDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct{ name, user, password, want string }{
		{"short password", ledger.AppUser, "short", "at least 20"},
		{"password with a space", ledger.AppUser, "a password with spaces in it", "printable ASCII"},
		{"bad role name", "Payment-App", appPassword1, "role name"},
		{"the owner itself", pg.Superuser, appPassword1, "must not connect as the owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.master.Provision(ctx, tc.user, tc.password)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Provision(%q, …) error = %v, want one containing %q", tc.user, err, tc.want)
			}
		})
	}
	su, err := p.srv.Connect(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, "GRANT pg_write_all_data TO "+ledger.AppUser); err != nil {
		t.Fatal(err)
	}
	_, err = p.master.Provision(ctx, ledger.AppUser, appPassword1)
	if err == nil || !strings.Contains(err.Error(), "membership of pg_write_all_data") {
		t.Errorf("Provision of a role that is a member of pg_write_all_data: error = %v, want a refusal naming the membership", err)
	}
}

// TestCheckSchema: a database never migrated lacks every migration; one
// missing the last lacks that one, named; a complete one passes. Without
// Options.Migrate the first write refuses with the same error.
func TestCheckSchema(t *testing.T) {
	dsn := startDB(t, "payments")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := ledger.Open(ledger.Options{DSN: dsn, Region: "us-east-1", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	all, _ := ledger.Migrations()
	var se *ledger.SchemaError
	if err := l.CheckSchema(ctx); !errors.As(err, &se) || len(se.Missing) != len(all) || !strings.Contains(err.Error(), "0001_payments") {
		t.Fatalf("CheckSchema(fresh) = %v, want a *SchemaError naming all %d migrations", err, len(all))
	}
	_, _, err = l.Insert(ctx, payment.Record{Payment: payment.Payment{PaymentID: "early", AmountMinor: 1, Currency: "USD", Region: "us-east-1", CreatedAt: time.Now().UTC()}, Response: []byte("{}")})
	if !errors.Is(err, ledger.ErrSchemaBehind) {
		t.Errorf("Insert on an unmigrated schema: error = %v, want ErrSchemaBehind", err)
	}
	if ok, err := l.Writable(ctx); ok || err != nil {
		t.Errorf("Writable(unmigrated) = %v, %v; want false, nil (it answers, the write cannot be made)", ok, err)
	}
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema(migrated) = %v, want nil", err)
	}
	last := all[len(all)-1]
	if _, err := l.Payments(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, last.Version); err != nil {
		t.Fatal(err)
	}
	err = l.CheckSchema(ctx)
	if !errors.As(err, &se) || len(se.Missing) != 1 || !strings.Contains(err.Error(), last.Name) || !strings.Contains(err.Error(), "provision") {
		t.Errorf("CheckSchema(without %04d) = %v, want a *SchemaError naming %04d_%s and what to do", last.Version, err, last.Version, last.Name)
	}
}
