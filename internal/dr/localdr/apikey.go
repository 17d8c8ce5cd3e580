package localdr

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"paydr/internal/apikey"
	"paydr/internal/apikey/ssmkey"
	"paydr/internal/local/env"
	"paydr/internal/sdkhttp"
)

// APIKey returns the payments API key of the local environment m: the
// SecureString /paydr/<suffix>/api/key that terraform apply wrote into the
// emulator, read in region as the processors read it (both regions hold the
// same key). It goes to the emulator itself, not through a fault proxy, so
// a fault injected for the processors never keeps a drill or a DR step from
// authenticating. Every local client of POST /payments sends it.
func APIKey(ctx context.Context, m *env.Manifest, region string) (string, error) {
	c := m.DRCredentials()
	params := ssm.New(ssm.Options{
		Region:       region,
		BaseEndpoint: aws.String(m.Moto.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		APIOptions:   sdkhttp.APIOptions(),
	})
	key, err := ssmkey.Read(ctx, params, apikey.ParameterName(m.Suffix))
	if err != nil {
		return "", fmt.Errorf("localdr: payments API key: %w; is the emulator of %s running (paydr status)?", err, m.StateDir)
	}
	return key, nil
}

// APIKey implements drill.Env: the key read in the writer's region.
func (e *DrillEnv) APIKey(ctx context.Context) (string, error) {
	m, err := e.b.manifest()
	if err != nil {
		return "", err
	}
	region := m.Regions[env.SlotPrimary].Name
	if w, ok := m.Writer(); ok {
		region = m.Regions[w].Name
	}
	return APIKey(ctx, m, region)
}
