package moto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// warmCall is one read-only request Warm sends: an AWS API call in one of
// its three wire shapes (a query form, a JSON target, a REST GET).
type warmCall struct {
	// service is the SigV4 signing name; moto picks the service (and, for
	// every call, the region) from the credential scope of the
	// Authorization header, since one endpoint serves them all.
	service string
	// global services have one backend: they are called once, in the
	// first region.
	global bool
	// form is a query-protocol body (Action=...&Version=...).
	form string
	// target is a JSON-protocol X-Amz-Target; its body is {}.
	target string
	// path is a REST GET's path.
	path string
}

// warmCalls are the services the local stack applies to, one cheap
// listing each. moto 5.2 imports a service's code and builds its backend
// for a region on the first request: measured on 2 cores, EC2's first
// DescribeAvailabilityZones took 1.8 s (the region's default VPC, subnets
// and AMIs), API Gateway's 0.5 s, Lambda's 0.4 s, Route 53's, RDS's, SSM's
// and STS's 0.1-0.2 s each, the rest tens of milliseconds; and moto answers
// one request at a time while it does. What the plan needs comes first
// (the providers' GetCallerIdentity, the availability zones, the ephemeral
// passwords); Warm sends each call to every region before the next.
var warmCalls = []warmCall{
	{service: "ec2", form: "Action=DescribeAvailabilityZones&Version=2016-11-15"},
	{service: "sts", global: true, form: "Action=GetCallerIdentity&Version=2011-06-15"},
	{service: "secretsmanager", target: "secretsmanager.ListSecrets"},
	{service: "iam", global: true, form: "Action=ListRoles&Version=2010-05-08"},
	{service: "route53", global: true, path: "/2013-04-01/hostedzone"},
	{service: "rds", form: "Action=DescribeDBClusters&Version=2014-10-31"},
	{service: "sns", form: "Action=ListTopics&Version=2010-03-31"},
	{service: "monitoring", form: "Action=DescribeAlarms&Version=2010-08-01"},
	{service: "lambda", path: "/2015-03-31/functions/"},
	{service: "apigateway", path: "/v2/apis"},
	{service: "kms", target: "TrentService.ListKeys"},
	{service: "ssm", target: "AmazonSSM.DescribeParameters"},
	{service: "dynamodb", target: "DynamoDB_20120810.ListTables"},
	{service: "logs", target: "Logs_20140328.DescribeLogGroups"},
	{service: "events", target: "AWSEvents.ListEventBuses"},
	{service: "backup", path: "/backup-vaults/"},
}

// Warm sends one read-only listing to each service the local stack uses,
// in each of regions (global services once), so that moto builds its
// backends before Terraform's first requests wait on them: the plan's
// data sources (EC2's availability zones) otherwise take seconds. It
// creates nothing. It returns an error naming each call moto did not
// answer with 200; the first failure to reach moto at all ends it.
// Requests are not signed: moto checks signatures only once IAM is
// enforced, and Warm is for a server just started.
func (s *Server) Warm(ctx context.Context, regions ...string) error {
	if len(regions) == 0 {
		return errors.New("moto: warm: no regions")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var errs []error
	for _, c := range warmCalls {
		for i, region := range regions {
			if c.global && i > 0 {
				continue
			}
			if err := s.warmOne(ctx, client, c, region); err != nil {
				if ctx.Err() != nil || errors.Is(err, errUnreachable) {
					return errors.Join(append(errs, err)...)
				}
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// errUnreachable marks a call that never reached moto.
var errUnreachable = errors.New("unreachable")

func (s *Server) warmOne(ctx context.Context, client *http.Client, c warmCall, region string) error {
	method, path, body, contentType := http.MethodPost, "/", "", ""
	switch {
	case c.form != "":
		body, contentType = c.form, "application/x-www-form-urlencoded; charset=utf-8"
	case c.target != "":
		body, contentType = "{}", "application/x-amz-json-1.1"
	default:
		method, path = http.MethodGet, c.path
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint()+path, rd)
	if err != nil {
		return fmt.Errorf("moto: warm %s in %s: %w", c.service, region, err)
	}
	req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=test/%s/%s/%s/aws4_request, SignedHeaders=host, Signature=0",
		time.Now().UTC().Format("20060102"), region, c.service))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.target != "" {
		req.Header.Set("X-Amz-Target", c.target)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("moto: warm %s in %s at %s: %w: %w", c.service, region, s.Endpoint(), errUnreachable, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto: warm %s in %s (%s %s): %s: %s", c.service, region, method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
