// Package rdsca holds the Amazon RDS certificate authorities' global bundle,
// the roots the processor verifies its Aurora PostgreSQL server against
// (sslmode=verify-full). The bundle goes into the processor's Lambda zip as
// ZipName (paydr/internal/bundle), and the stack points the function at it
// with PAYDR_DB_CA_FILE=LambdaPath.
//
// global-bundle.pem is data, committed with its provenance in
// PROVENANCE.md: AWS publishes it at
// https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem. An
// operator who downloads a newer bundle passes it to the build instead
// (paydr/internal/bundle Options.CABundle, PAYDR_RDS_CA_BUNDLE) without a
// code change.
package rdsca

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ZipName is the bundle's name inside the Lambda zip.
const ZipName = "rds-ca-bundle.pem"

// LambdaPath is where the Lambda runtime finds the bundle: the zip is
// unpacked in /var/task.
const LambdaPath = "/var/task/" + ZipName

// SourceURL is where AWS publishes the bundle.
const SourceURL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

//go:embed global-bundle.pem
var globalBundle []byte

// Global returns the committed global bundle (PEM).
func Global() []byte { return globalBundle }

// Parse returns the certificates of a PEM bundle, checking that it holds at
// least one, that every block is a certificate, and that every certificate
// is a certificate authority's. name says where the bundle came from, for
// the error.
func Parse(name string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("rdsca: %s: block %d is a %q, not a CERTIFICATE", name, n, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("rdsca: %s: certificate %d: %w", name, n, err)
		}
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("rdsca: %s: certificate %d (%s) is not a certificate authority's", name, n, c.Subject.CommonName)
		}
		certs = append(certs, c)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("rdsca: %s: text after the last certificate is not PEM", name)
	}
	if len(certs) == 0 {
		return nil, errors.New("rdsca: " + name + ": no certificate in it; download the bundle from " + SourceURL)
	}
	return certs, nil
}
