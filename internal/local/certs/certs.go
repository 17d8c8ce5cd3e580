// Package certs is the local environment's small certificate authority: an
// ECDSA P-256 CA made once per state directory, and a server certificate it
// issues for the addresses PostgreSQL is reached at, so the local processors
// verify their database (sslmode=verify-full) exactly as the deployed ones
// verify Aurora's against the RDS CA bundle.
//
// The private keys are written 0600 and never leave the directory; the
// server key is copied, by package pg, to where the PostgreSQL server's
// unprivileged OS user can read it.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Lifetimes of what Ensure makes, and how close to its end a server
// certificate is renewed.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 365 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
)

// Files names the PEM files of a directory Ensure keeps.
type Files struct{ Dir string }

// CAFile is the CA's certificate: what clients trust (sslrootcert).
func (f Files) CAFile() string { return filepath.Join(f.Dir, "ca.pem") }

// CAKeyFile is the CA's private key (0600).
func (f Files) CAKeyFile() string { return filepath.Join(f.Dir, "ca-key.pem") }

// CertFile is the server certificate, issued by the CA.
func (f Files) CertFile() string { return filepath.Join(f.Dir, "server.pem") }

// KeyFile is the server certificate's private key (0600).
func (f Files) KeyFile() string { return filepath.Join(f.Dir, "server-key.pem") }

// Ensure makes, in dir, a CA named after name unless one is there, and a
// server certificate for hosts (IP addresses or DNS names) issued by it
// unless the one there already covers every host, was issued by this CA and
// is valid for more than RenewBefore. It reports whether it issued a new
// server certificate (a server serving the old one should restart).
func Ensure(dir, name string, hosts []string) (f Files, issued bool, err error) {
	f = Files{Dir: dir}
	if len(hosts) == 0 {
		return f, false, errors.New("certs: no host to issue the server certificate for")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, false, fmt.Errorf("certs: %w", err)
	}
	ca, caKey, err := loadPair(f.CAFile(), f.CAKeyFile())
	if errors.Is(err, fs.ErrNotExist) {
		ca, caKey, err = newCA(f, name)
	}
	if err != nil {
		return f, false, fmt.Errorf("certs: CA in %s: %w; remove %s and %s to make a new one", dir, err, f.CAFile(), f.CAKeyFile())
	}
	if cert, _, err := loadPair(f.CertFile(), f.KeyFile()); err == nil && covers(cert, hosts) &&
		cert.CheckSignatureFrom(ca) == nil && time.Until(cert.NotAfter) > RenewBefore {
		return f, false, nil
	}
	if err := issue(f, ca, caKey, hosts); err != nil {
		return f, false, fmt.Errorf("certs: server certificate in %s: %w", dir, err)
	}
	return f, true, nil
}

// covers reports whether cert names every host.
func covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func newCA(f Files, name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"paydr local environment"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(f.CAFile(), f.CAKeyFile(), der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func issue(f Files, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: hosts[0], Organization: []string{"paydr local environment"}},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.Add(ServerLifetime),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		AuthorityKeyId: ca.SubjectKeyId,
	}
	for _, h := range slices.Compact(slices.Sorted(slices.Values(hosts))) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writePair(f.CertFile(), f.KeyFile(), der, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

// writePair writes a certificate (0644) and its key (0600), the key first,
// each through a temporary file so a reader never sees half of one.
func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".certs-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadPair reads a certificate and its ECDSA key, checking they belong
// together.
func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(kblk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, fmt.Errorf("%s does not hold the key of %s", keyPath, certPath)
	}
	return cert, key, nil
}
