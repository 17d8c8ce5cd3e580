package ledger_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"paydr/internal/ledger"
	"paydr/internal/local/certs"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
)

// tlsDSN is a DSN for srv's payments database as user over host.
func tlsDSN(srv *pg.Server, host, user, password, sslmode string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: host + ":" + strconv.Itoa(srv.Port()), Path: "/payments"}
	if sslmode != "" {
		u.RawQuery = "sslmode=" + sslmode
	}
	return u.String()
}

// TestVerifyFull connects the way the processor does (ledger.Open with
// CAFile) to a PostgreSQL server serving TLS with a certificate for
// 127.0.0.1: it succeeds over TLS with the right CA, even when the DSN says
// sslmode=disable, and fails with another CA and with a host name the
// certificate does not carry; a plaintext connection of a role other than
// the superuser is refused by the server.
func TestVerifyFull(t *testing.T) {
	srv, caFile := pgtest.StartTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	su, err := srv.Connect(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, `CREATE ROLE tls_probe LOGIN PASSWORD 'probe-secret'`); err != nil {
		t.Fatal(err)
	}
	other, _, err := certs.Ensure(filepath.Join(t.TempDir(), "other"), "another CA", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	// connect reaches the server through l as tls_probe: Migrate fails on
	// privileges (a server error) once connected.
	connect := func(l *ledger.Ledger) error {
		_, err := l.Migrate(ctx)
		var pgErr *pgconn.PgError
		if err != nil && !errors.As(err, &pgErr) {
			return err
		}
		return nil
	}
	for _, tc := range []struct {
		name, host, dsnMode, ca string
		want                    string // "" connects
	}{
		{"right CA", "127.0.0.1", "", caFile, ""},
		{"right CA, DSN says disable", "127.0.0.1", "disable", caFile, ""},
		{"another CA", "127.0.0.1", "", other.CAFile(), "certificate signed by unknown authority"},
		{"a name the certificate lacks", "localhost", "", caFile, "certificate is not valid for any names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ledger.Open(ledger.Options{DSN: tlsDSN(srv, tc.host, "tls_probe", "probe-secret", tc.dsnMode), Region: "us-east-1", MaxConns: 1, CAFile: tc.ca})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			err = connect(l)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("connect over verify-full: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("connect over verify-full: error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// What the server sees: the ledger's connection is TLS.
	tlsCfg, err := ledger.VerifyFull(caFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig(tlsDSN(srv, "127.0.0.1", "tls_probe", "probe-secret", ""))
	if err != nil {
		t.Fatal(err)
	}
	cc.TLSConfig, cc.Fallbacks = tlsCfg, nil
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("connect as tls_probe over verify-full: %v", err)
	}
	var ssl bool
	var version string
	if err := conn.QueryRow(ctx, `SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl, &version); err != nil || !ssl {
		t.Errorf("pg_stat_ssl of the connection = %v %q, %v; want TLS", ssl, version, err)
	}
	conn.Close(ctx)
	// Plaintext, the role is refused by pg_hba.conf, not by its password.
	_, err = pgx.Connect(ctx, tlsDSN(srv, "127.0.0.1", "tls_probe", "probe-secret", "disable"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28000" || !strings.Contains(pgErr.Message, "no encryption") {
		t.Errorf("plaintext connection as tls_probe: error = %v, want 28000 pg_hba.conf rejects ... no encryption", err)
	}
}
