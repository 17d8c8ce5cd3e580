package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AppUser is the name of the role the processor connects as.
const AppUser = "payment_app"

// appGrants are the privileges the application role holds on each table of
// the schema: what the ledger's queries need, no more. The processor inserts
// payments and stamps them (replayed_at, event_published_at), upserts its
// region's health_probe row, and reads schema_migrations to check the
// schema's version; it deletes nothing. A migration that adds a table must
// add it here, or Provision refuses (TestProvisionGrantsEveryTable).
var appGrants = map[string][]string{
	"payments":          {"SELECT", "INSERT", "UPDATE"},
	"health_probe":      {"SELECT", "INSERT", "UPDATE"},
	"schema_migrations": {"SELECT"},
}

// validRoleName reports whether name is a PostgreSQL role name paydr
// creates: ^[a-z_][a-z0-9_]{0,62}$. It is a loop, not a regexp: the
// processor links this package, and compiling that pattern at package
// init cost its Lambda INIT about 0.4 ms (727 allocations).
func validRoleName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// MinPasswordLength is the shortest application password Provision takes.
const MinPasswordLength = 20

// Provision brings the database l is connected to (as its owner: the Aurora
// master user, or the local superuser) to what the processor needs, in one
// place: it applies the missing migrations (Migrate), then creates the
// application role user, or alters it, with password and exactly the
// privileges of appGrants, under the migrations' advisory lock, in one
// transaction. It is idempotent; run again with another password it rotates
// the password (new connections use it; open ones stay).
//
// The role logs in and nothing else: not a superuser, no CREATEDB, no
// CREATEROLE, no replication, not the owner of anything, a member of no
// role; CONNECT on the database, USAGE (not CREATE) on schema public, and
// CREATE on public and TEMPORARY on the database are revoked from PUBLIC. A role found with more (made by
// hand) is refused with what to take away, not silently kept.
//
// The password is sent as a SCRAM-SHA-256 verifier computed here, so the
// plaintext never reaches the server's statement log.
func (l *Ledger) Provision(ctx context.Context, user, password string) (applied []int, err error) {
	if !validRoleName(user) {
		return nil, fmt.Errorf("ledger: provision: role name %q must be lower-case letters, digits and _, starting with a letter or _, at most 63", user)
	}
	if len(password) < MinPasswordLength {
		return nil, fmt.Errorf("ledger: provision %s: the password has %d characters, want at least %d", user, len(password), MinPasswordLength)
	}
	for _, c := range password {
		if c < 0x21 || c > 0x7e {
			return nil, fmt.Errorf("ledger: provision %s: the password must be printable ASCII without spaces (SCRAM's SASLprep is not applied)", user)
		}
	}
	applied, err = l.Migrate(ctx)
	if err != nil {
		return applied, fmt.Errorf("ledger: provision %s: %w", user, err)
	}
	verifier, err := scramVerifier(password)
	if err != nil {
		return applied, fmt.Errorf("ledger: provision %s: %w", user, err)
	}
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockID)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		return provisionRole(ctx, tx, user, verifier)
	})
	if err != nil {
		return applied, mapErr("provision "+user, err)
	}
	return applied, nil
}

func provisionRole(ctx context.Context, tx pgx.Tx, user, verifier string) error {
	var me, db string
	if err := tx.QueryRow(ctx, `SELECT current_user, current_database()`).Scan(&me, &db); err != nil {
		return err
	}
	if me == user {
		return fmt.Errorf("role %s is the one provisioning: the application must not connect as the owner", user)
	}
	ident := pgx.Identifier{user}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, user).Scan(&exists); err != nil {
		return err
	}
	// SUPERUSER, REPLICATION and BYPASSRLS are left at their defaults (off)
	// rather than named: only a true superuser may name them in ALTER ROLE,
	// and Aurora's master user is not one. They are checked below.
	stmt := "ALTER ROLE " + ident + " WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD " + literal(verifier)
	if !exists {
		stmt = "CREATE ROLE " + ident + " WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD " + literal(verifier)
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create or alter role: %w", err)
	}
	if err := checkRole(ctx, tx, user); err != nil {
		return err
	}
	dbIdent := pgx.Identifier{db}.Sanitize()
	stmts := []string{
		"REVOKE ALL ON DATABASE " + dbIdent + " FROM " + ident,
		"GRANT CONNECT ON DATABASE " + dbIdent + " TO " + ident,
		"REVOKE TEMPORARY ON DATABASE " + dbIdent + " FROM PUBLIC",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"REVOKE ALL ON SCHEMA public FROM " + ident,
		"GRANT USAGE ON SCHEMA public TO " + ident,
		"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM " + ident,
		"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM " + ident,
		"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM " + ident,
	}
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		privs, ok := appGrants[t]
		if !ok {
			return fmt.Errorf("table %s has no entry in the application role's grants (paydr/internal/ledger appGrants): add what the processor needs on it", t)
		}
		stmts = append(stmts, "GRANT "+strings.Join(privs, ", ")+" ON TABLE "+pgx.Identifier{t}.Sanitize()+" TO "+ident)
	}
	for name := range appGrants {
		if !slices.Contains(tables, name) {
			return fmt.Errorf("table %s of the application role's grants is not in the schema after the migrations", name)
		}
	}
	// Sequences behind identity or serial columns of the tables it inserts
	// into (none today).
	stmts = append(stmts, "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "+ident)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", strings.ReplaceAll(s, verifier, "…"), err)
		}
	}
	return nil
}

// checkRole refuses a role with more than login: attributes, memberships
// or ownership that a hand-made role might carry.
func checkRole(ctx context.Context, tx pgx.Tx, user string) error {
	var super, createRole, createDB, repl, bypass bool
	var member []string
	var owns int
	err := tx.QueryRow(ctx, `SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
			ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1),
			(SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
				+ (SELECT count(*) FROM pg_database WHERE datdba = r.oid)
		FROM pg_roles r WHERE r.rolname = $1`, user).Scan(&super, &createRole, &createDB, &repl, &bypass, &member, &owns)
	if err != nil {
		return err
	}
	var extra []string
	for name, has := range map[string]bool{"SUPERUSER": super, "CREATEROLE": createRole, "CREATEDB": createDB, "REPLICATION": repl, "BYPASSRLS": bypass} {
		if has {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	if len(member) > 0 {
		extra = append(extra, "membership of "+strings.Join(member, ", "))
	}
	if owns > 0 {
		extra = append(extra, fmt.Sprintf("ownership of %d objects", owns))
	}
	if len(extra) > 0 {
		return fmt.Errorf("role %s has %s: the application role must log in and nothing else; take that away (ALTER ROLE, REVOKE, REASSIGN OWNED) or drop the role, then provision again", user, strings.Join(extra, ", "))
	}
	return nil
}

// literal quotes s as an SQL string literal (standard_conforming_strings
// on, PostgreSQL's default since 9.1).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, 7677; PostgreSQL's scram_build_secret):
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifierWithSalt(password, salt, scramIterations)
}

func scramVerifierWithSalt(password string, salt []byte, iter int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// SchemaError reports that the database's schema lacks migrations this
// code needs: it was not provisioned since they were added.
type SchemaError struct {
	Missing []Migration // in version order
}

func (e *SchemaError) Error() string {
	names := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		names[i] = fmt.Sprintf("%04d_%s", m.Version, m.Name)
	}
	return fmt.Sprintf("ledger: the database's schema lacks migration %s that this processor needs; provision it (Ledger.Provision as the master user: paydr up does it locally, the stack's provisioning function in AWS) before starting the processor", strings.Join(names, ", "))
}

// ErrSchemaBehind is matched (errors.Is) by a *SchemaError.
var ErrSchemaBehind = errors.New("ledger: schema behind")

// Is makes a *SchemaError match ErrSchemaBehind.
func (e *SchemaError) Is(target error) bool { return target == ErrSchemaBehind }

// CheckSchema reports, as a *SchemaError, the embedded migrations the
// database has not applied, reading schema_migrations (which the
// application role may SELECT); nil when none is missing. It changes
// nothing. An error reaching the database is returned as such.
func (l *Ledger) CheckSchema(ctx context.Context) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	rows, err := l.pool.Query(ctx, `SELECT version FROM schema_migrations`)
	var done []int
	if err == nil {
		done, err = pgx.CollectRows(rows, pgx.RowTo[int])
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: never migrated
		err, done = nil, nil
	}
	if err != nil {
		return mapErr("check schema", err)
	}
	var missing []Migration
	for _, m := range ms {
		if !slices.Contains(done, m.Version) {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return &SchemaError{Missing: missing}
	}
	return nil
}
