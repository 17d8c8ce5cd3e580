package rdsca_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"paydr/internal/bundle/rdsca"
)

// committedSHA256 is the bundle's hash recorded in PROVENANCE.md.
const committedSHA256 = "f295717be93d406212b17ecf8fecf71454762f465feb160cee61056635a2dcfc"

// TestGlobalBundle checks the committed bundle against what PROVENANCE.md
// says of it: its hash, 102 certificate authorities, all Amazon RDS's, none
// expired, and the roots the stack's instances use
// (ca_cert_identifier rds-ca-rsa2048-g1) in both default regions.
func TestGlobalBundle(t *testing.T) {
	sum := sha256.Sum256(rdsca.Global())
	if got := hex.EncodeToString(sum[:]); got != committedSHA256 {
		t.Errorf("sha256(global-bundle.pem) = %s, want %s (update PROVENANCE.md with the file)", got, committedSHA256)
	}
	certs, err := rdsca.Parse("global-bundle.pem", rdsca.Global())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 102 {
		t.Errorf("the bundle holds %d certificates, want 102", len(certs))
	}
	cns := map[string]bool{}
	for _, c := range certs {
		cn := c.Subject.CommonName
		cns[cn] = true
		if !strings.HasPrefix(cn, "Amazon RDS ") || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Amazon Web Services, Inc." {
			t.Errorf("certificate %q (O=%v) is not an Amazon RDS CA", cn, c.Subject.Organization)
		}
		if time.Now().After(c.NotAfter) {
			t.Errorf("certificate %q expired on %s", cn, c.NotAfter)
		}
	}
	for _, want := range []string{
		"Amazon RDS us-east-1 Root CA RSA2048 G1",
		"Amazon RDS us-west-2 Root CA RSA2048 G1",
		"Amazon RDS us-east-1 Root CA ECC384 G1",
		"Amazon RDS us-west-2 Root CA RSA4096 G1",
	} {
		if !cns[want] {
			t.Errorf("the bundle lacks %q", want)
		}
	}
}

func TestParseRefusesWhatIsNotACABundle(t *testing.T) {
	for _, tc := range []struct{ name, pem, want string }{
		{"empty", "", "no certificate"},
		{"html", "<!DOCTYPE html><html></html>", "not PEM"},
		{"key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", `"PRIVATE KEY"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rdsca.Parse("x.pem", []byte(tc.pem))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s) error = %v, want one containing %q", tc.name, err, tc.want)
			}
		})
	}
}
