package awsdr

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"paydr/internal/apikey"
	"paydr/internal/apikey/ssmkey"
	"paydr/internal/sdkhttp"
)

// Options say where to act.
type Options struct {
	// Suffix is the environment suffix of the stack (/paydr/<suffix>/...).
	Suffix string
	// Region is the acting region: the one the topology is read from, the
	// lock is taken in, and Status describes the global cluster from. For a
	// failover, the surviving region.
	Region string
	// Endpoint, if set, replaces every service endpoint (an emulator).
	Endpoint string
	// RDSEndpoint, if set, replaces the RDS endpoint only.
	RDSEndpoint string
}

// Validate names the first missing field.
func (o Options) Validate() error {
	if o.Suffix == "" {
		return fmt.Errorf("awsdr: options: the environment suffix is required (--env)")
	}
	if o.Region == "" {
		return fmt.Errorf("awsdr: options: the acting region is required (--region, or AWS_REGION); for a failover, the surviving region")
	}
	return nil
}

// Connect loads the AWS configuration, reads the topology in the acting
// region, and returns the backend and its lock.
func Connect(ctx context.Context, o Options) (*Backend, *DynamoLock, error) {
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	load := []func(*config.LoadOptions) error{config.WithRegion(o.Region), config.WithAPIOptions(sdkhttp.APIOptions())}
	if o.Endpoint != "" && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		// An emulator takes any credentials until it enforces IAM; then
		// the environment's (an assumed role's) are the ones to use.
		load = append(load, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, nil, fmt.Errorf("awsdr: load aws config: %w", err)
	}
	ep := func(specific string) *string {
		if specific != "" {
			return aws.String(specific)
		}
		if o.Endpoint != "" {
			return aws.String(o.Endpoint)
		}
		return nil
	}
	in := func(region string) aws.Config { c := cfg.Copy(); c.Region = region; return c }
	params := ssm.NewFromConfig(cfg, func(x *ssm.Options) { x.BaseEndpoint = ep("") })
	topo, err := Discover(ctx, params, o.Suffix)
	if err != nil {
		return nil, nil, err
	}
	regions := map[string]Clients{}
	for _, r := range []string{topo.Primary.Region, topo.Secondary.Region} {
		rc := rds.NewFromConfig(in(r), func(x *rds.Options) { x.BaseEndpoint = ep(o.RDSEndpoint) })
		regions[r] = Clients{
			Global:   rc,
			Snapshot: rc,
			Bound:    rc,
			Metrics:  cloudwatch.NewFromConfig(in(r), func(x *cloudwatch.Options) { x.BaseEndpoint = ep("") }),
			Fence:    lambda.NewFromConfig(in(r), func(x *lambda.Options) { x.BaseEndpoint = ep("") }),
		}
	}
	// Route 53's API is served from us-east-1: read best effort, by Status
	// only.
	health := route53.NewFromConfig(in("us-east-1"), func(x *route53.Options) { x.BaseEndpoint = ep("") })
	b, err := New(topo, o.Region, regions, health)
	if err != nil {
		return nil, nil, err
	}
	// The API key, read when a verify step needs it, in the acting region:
	// both regions hold the same key.
	b.APIKeyParameter = apikey.ParameterName(o.Suffix)
	b.APIKey = func(ctx context.Context) (string, error) { return ssmkey.Read(ctx, params, b.APIKeyParameter) }
	lock := &DynamoLock{API: dynamodb.NewFromConfig(cfg, func(x *dynamodb.Options) { x.BaseEndpoint = ep("") }), Table: topo.SessionsTable, Region: o.Region}
	return b, lock, nil
}
