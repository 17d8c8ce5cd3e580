package ssmkey_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"paydr/internal/apikey"
	"paydr/internal/apikey/ssmkey"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"
)

// A test value, not a secret.
const key = "Zk3q9T0aXbV7mNcR2pLw5sYdHf8jUe4gKo1iBt6vQzA0xCyE"

// recordingParams is a ParamsAPI that records its input.
type recordingParams struct{ in *ssm.GetParameterInput }

func (r *recordingParams) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	r.in = in
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Type: types.ParameterTypeSecureString, Value: aws.String(key)}}, nil
}

// TestReadDecrypts: Read asks SSM to decrypt, by the name given.
func TestReadDecrypts(t *testing.T) {
	r := &recordingParams{}
	if _, err := ssmkey.Read(context.Background(), r, "/paydr/x/api/key"); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(r.in.Name) != "/paydr/x/api/key" || !aws.ToBool(r.in.WithDecryption) {
		t.Errorf("GetParameter(%q, WithDecryption %v), want /paydr/x/api/key with decryption", aws.ToString(r.in.Name), aws.ToBool(r.in.WithDecryption))
	}
}

// TestReadFromSSM reads keys from moto's SSM as the stack writes them (a
// SecureString; moto's default key stands in for the region's KMS key) and
// refuses what must never authenticate anyone. No error carries the value.
func TestReadFromSSM(t *testing.T) {
	srv := mototest.Start(t)
	ctx := context.Background()
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	cfg := aws.Config{APIOptions: sdkhttp.APIOptions(), Region: "us-west-2", Credentials: creds, BaseEndpoint: aws.String(srv.Endpoint())}
	params := ssm.NewFromConfig(cfg)
	put := func(name string, typ types.ParameterType, value string) {
		t.Helper()
		in := &ssm.PutParameterInput{Name: aws.String(name), Type: typ, Value: aws.String(value)}
		if _, err := params.PutParameter(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	put(apikey.ParameterName("good"), types.ParameterTypeSecureString, key)
	put(apikey.ParameterName("plain"), types.ParameterTypeString, key)
	put(apikey.ParameterName("short"), types.ParameterTypeSecureString, "short-key-1234")
	put(apikey.ParameterName("spaced"), types.ParameterTypeSecureString, key+" \n")

	tests := []struct {
		suffix  string
		want    string
		wantErr string
	}{
		{"good", key, ""},
		{"plain", "", "is a String parameter, want a SecureString"},
		{"short", "", "holds 14 characters, want at least 32"},
		{"spaced", "", "holds white space or a comma"},
		{"missing", "", "get parameter /paydr/missing/api/key"},
	}
	for _, tt := range tests {
		t.Run(tt.suffix, func(t *testing.T) {
			got, err := ssmkey.Read(ctx, params, apikey.ParameterName(tt.suffix))
			if got != tt.want {
				t.Errorf("Read(%s) = %q, want %q", tt.suffix, got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Read(%s) error = %v, want nil", tt.suffix, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Read(%s) error = %v, want one containing %q", tt.suffix, err, tt.wantErr)
			case err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "short-key")):
				t.Errorf("Read(%s) error %q carries the value", tt.suffix, err)
			}
		})
	}
}
