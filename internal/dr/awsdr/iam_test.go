package awsdr

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"paydr/internal/dr"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/stack"
)

// drPolicyActions returns the actions the synthesized stack's DR
// automation role is granted (aws_iam_role_policy.dr_automation).
func drPolicyActions(t *testing.T) []string {
	t.Helper()
	st, err := stack.Build(stack.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Synth()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Resource struct {
			Policies map[string]struct {
				Policy string `json:"policy"`
			} `json:"aws_iam_role_policy"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	doc := cfg.Resource.Policies["dr_automation"].Policy
	var actions []string
	for _, m := range regexp.MustCompile(`"Action" = \[([^\]]*)\]`).FindAllStringSubmatch(doc, -1) {
		for _, a := range regexp.MustCompile(`"([a-z0-9-]+:[A-Za-z*]+)"`).FindAllStringSubmatch(m[1], -1) {
			if !slices.Contains(actions, a[1]) {
				actions = append(actions, a[1])
			}
		}
	}
	if len(actions) < 10 {
		t.Fatalf("found %d actions in aws_iam_role_policy.dr_automation, want the whole policy: %s", len(actions), doc)
	}
	return actions
}

// TestDRRoleUnderEnforcedIAM runs a switchover through the AWS backend on
// credentials of a role holding exactly the DR automation policy's actions,
// with moto enforcing IAM: every call that reaches moto (the topology and
// API key parameters, the DynamoDB lock, the functions' concurrency, the
// health checks, the parameter groups) must be allowed. moto authorizes
// these services against the resource "*" (see stack's
// TestProcessorCodeUnderEnforcedIAM), so the role holds the actions on
// "*"; resource scoping is the static test's. The same role without
// ssm:GetParameter cannot even read the topology: the test would fail on a
// missing grant.
func TestDRRoleUnderEnforcedIAM(t *testing.T) {
	w := setUp(t)
	ctx := context.Background()
	actions := drPolicyActions(t)
	im := iam.NewFromConfig(cfgFor("us-east-1"), func(o *iam.Options) { o.BaseEndpoint = aws.String(w.moto) })
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("operator")}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("operator"), PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")}); err != nil {
		t.Fatal(err)
	}
	key, err := im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("operator")})
	if err != nil {
		t.Fatal(err)
	}
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}`
	role := func(name string, actions []string) string {
		out, err := im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{{"Effect": "Allow", "Action": actions, "Resource": "*"}}})
		if _, err := im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("dr"), PolicyDocument: aws.String(string(doc))}); err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Role.Arn)
	}
	full := role("payment-dr-automation-test", actions)
	lacking := role("payment-dr-without-ssm", slices.DeleteFunc(slices.Clone(actions), func(a string) bool { return a == "ssm:GetParameter" }))

	// The test world's own clients and fakes act as an administrator from
	// now on; the backend as the DR role.
	prev := adminKeys
	adminKeys = [2]string{aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey)}
	t.Cleanup(func() { adminKeys = prev })
	mototest.EnforceIAM(t, w.moto, "0")
	t.Cleanup(func() { mototest.EnforceIAM(t, w.moto, "inf") })
	as := func(arn string) {
		out, err := sts.NewFromConfig(cfgFor("us-east-1"), func(o *sts.Options) { o.BaseEndpoint = aws.String(w.moto) }).AssumeRole(ctx,
			&sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String("dr")})
		if err != nil {
			t.Fatalf("AssumeRole %s: %v", arn, err)
		}
		t.Setenv("AWS_ACCESS_KEY_ID", aws.ToString(out.Credentials.AccessKeyId))
		t.Setenv("AWS_SECRET_ACCESS_KEY", aws.ToString(out.Credentials.SecretAccessKey))
		t.Setenv("AWS_SESSION_TOKEN", aws.ToString(out.Credentials.SessionToken))
		t.Setenv("AWS_PROFILE", "")
	}

	as(lacking)
	if _, _, err := Connect(ctx, w.opts); !mototest.Denied(err) {
		t.Errorf("Connect as a DR role without ssm:GetParameter: err = %v, want AccessDenied reading the topology", err)
	}

	as(full)
	b, lock := connect(t, w)
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatalf("Status as the DR role, IAM enforced: %v", err)
	}
	// Every read of the status is allowed: no region unreachable, no
	// note of a read that failed.
	for _, r := range st.Regions {
		if !r.Reachable {
			t.Errorf("Status: %s unreachable as the DR role", r.Name)
		}
	}
	for _, n := range st.Notes {
		// "StatusCode: 403", as the SDK prints a refusal: a bare "403"
		// also matches a health check's random id.
		if strings.Contains(n, "StatusCode: 403") || strings.Contains(n, "AccessDenied") || strings.Contains(n, "SignatureDoesNotMatch") || strings.Contains(n, "InvalidClientTokenId") {
			t.Errorf("Status note: %s", n)
		}
	}
	j, _ := dr.OpenJournal(t.TempDir())
	o, err := dr.Operate(ctx, b, lock, j, dr.Request{Op: dr.Switchover, Owner: "test"}, &strings.Builder{})
	if err != nil {
		t.Fatalf("switchover as the DR role, IAM enforced: %v", err)
	}
	for _, s := range o.Steps {
		if s.Error != "" {
			t.Errorf("step %s: %s", s.Step.Name(), s.Error)
		}
	}
	mototest.EnforceIAM(t, w.moto, "inf") // the world's own clients hold moto's test credentials
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced by the DR role)", c)
	}
}
