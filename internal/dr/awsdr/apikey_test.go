package awsdr

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"paydr/internal/apikey"
	"paydr/internal/dr"
)

// TestVerifyCarriesAPIKey: the verify payment carries the key Connect reads
// from the acting region's parameter (the fake API endpoints answer 401
// without it); a key the processors do not hold fails the step at once,
// naming the parameter; a key that cannot be read fails it before any
// payment is sent.
func TestVerifyCarriesAPIKey(t *testing.T) {
	w := setUp(t)
	ctx := context.Background()
	params := ssm.NewFromConfig(cfgFor(w.opts.Region), func(o *ssm.Options) { o.BaseEndpoint = aws.String(w.moto) })
	setKey := func(v string) {
		t.Helper()
		if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(apikey.ParameterName("test")), Type: "SecureString",
			Value: aws.String(v), Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	verify := dr.Step{Action: dr.ActionVerify, Region: "us-east-1"}
	tests := []struct {
		name    string
		key     string // written to the acting region's parameter; "" deletes it
		wantErr string
		paid    bool
	}{
		{"the processors' key", testAPIKey, "", true},
		{"another key", "another-key-0123456789abcdefghijklmnopqrstuvwxyz", "HTTP 401", false},
		{"no key", "", "read the payments API key", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.key == "" {
				if _, err := params.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(apikey.ParameterName("test"))}); err != nil {
					t.Fatal(err)
				}
			} else {
				setKey(tt.key)
			}
			b, _ := connect(t, w)
			opID := "op-apikey-" + string(rune('a'+i))
			res, err := b.Do(ctx, opID, verify)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("verify error = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("verify = %q, %v; want an error containing %q", res, err, tt.wantErr)
			}
			if got := w.api["us-east-1"].payment(dr.VerifyPaymentID(opID)); got != tt.paid {
				t.Errorf("verify payment committed = %v, want %v", got, tt.paid)
			}
			if err != nil && tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("verify error %q carries the key", err)
			}
		})
	}
}
