package certs_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"paydr/internal/local/certs"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s is not PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnsure: the CA is made once, the server certificate is issued for
// every host, verifies against the CA, is kept while it covers the hosts and
// reissued (by the same CA) when a host is added; keys are 0600.
func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	f, issued, err := certs.Ensure(dir, "paydr test CA", []string{"127.0.0.1", "10.98.0.1"})
	if err != nil || !issued {
		t.Fatalf("Ensure() = %v, %v; want issued, nil", issued, err)
	}
	for path, want := range map[string]os.FileMode{f.CAKeyFile(): 0o600, f.KeyFile(): 0o600, f.CAFile(): 0o644, f.CertFile(): 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	ca := readCert(t, f.CAFile())
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA: IsCA %v, algorithm %v; want a CA with an ECDSA key", ca.IsCA, ca.PublicKeyAlgorithm)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	verify := func(host string) error {
		_, err := readCert(t, f.CertFile()).Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
		return err
	}
	for _, h := range []string{"127.0.0.1", "10.98.0.1"} {
		if err := verify(h); err != nil {
			t.Errorf("the server certificate does not verify for %s: %v", h, err)
		}
	}
	if verify("10.98.0.2") == nil {
		t.Error("the server certificate verifies for 10.98.0.2, which it was not issued for")
	}
	before, _ := os.ReadFile(f.CertFile())
	if _, issued, err := certs.Ensure(dir, "paydr test CA", []string{"10.98.0.1", "127.0.0.1"}); err != nil || issued {
		t.Errorf("Ensure(same hosts) = %v, %v; want kept, nil", issued, err)
	}
	if after, _ := os.ReadFile(f.CertFile()); !bytes.Equal(before, after) {
		t.Error("the server certificate changed though it covered the hosts")
	}
	caBefore, _ := os.ReadFile(f.CAFile())
	if _, issued, err := certs.Ensure(dir, "paydr test CA", []string{"127.0.0.1", "10.98.0.2"}); err != nil || !issued {
		t.Errorf("Ensure(a new host) = %v, %v; want issued, nil", issued, err)
	}
	if caAfter, _ := os.ReadFile(f.CAFile()); !bytes.Equal(caBefore, caAfter) {
		t.Error("the CA changed when a server certificate was reissued")
	}
	if err := verify("10.98.0.2"); err != nil {
		t.Errorf("the reissued certificate does not verify for 10.98.0.2: %v", err)
	}
}
