package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"paydr/internal/local/env"
	"paydr/internal/local/identity"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"
)

// TestMakeAgainstTheEmulator makes the identities against a real moto:
// roles trusted by lambda.amazonaws.com (as the stack's are) are assumed,
// a second Make keeps what the emulator still knows, a stale record is
// replaced, and CheckRefused tells an emulator that enforces IAM from one
// that does not.
func TestMakeAgainstTheEmulator(t *testing.T) {
	srv := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := iam.NewFromConfig(aws.Config{APIOptions: sdkhttp.APIOptions(), Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	arn := map[string]string{}
	for _, name := range []string{"payment-processor-us-east-1-t", "payment-processor-us-west-2-t", "payment-dr-automation-t"} {
		out, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
		if err != nil {
			t.Fatalf("CreateRole %s: %v", name, err)
		}
		arn[name] = aws.ToString(out.Role.Arn)
	}
	req := env.IAMRequest{Endpoint: srv.Endpoint(), Suffix: "t", DRRole: arn["payment-dr-automation-t"], ProcessorRoles: map[env.Slot]string{
		env.SlotPrimary: arn["payment-processor-us-east-1-t"], env.SlotSecondary: arn["payment-processor-us-west-2-t"]}}
	var m identity.Maker
	if err := m.CheckRefused(ctx, srv.Endpoint()); err == nil {
		t.Errorf("CheckRefused = nil before IAM is enforced; want an error")
	}
	ids, err := m.Make(ctx, req)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	if !strings.HasSuffix(ids.Operator.Identity, ":user/paydr-operator-t") {
		t.Errorf("operator = %q, want the user paydr-operator-t", ids.Operator.Identity)
	}
	for s, role := range map[env.Slot]string{env.SlotPrimary: "payment-processor-us-east-1-t", env.SlotSecondary: "payment-processor-us-west-2-t"} {
		if c := ids.Processors[s]; !strings.Contains(c.Identity, ":assumed-role/"+role+"/") || c.SessionToken == "" {
			t.Errorf("processor %s = %+v, want credentials of %s with a session token", s, c, role)
		}
	}
	if !strings.Contains(ids.DR.Identity, ":assumed-role/payment-dr-automation-t/") {
		t.Errorf("DR = %q, want the DR role", ids.DR.Identity)
	}

	// Again with the record: everything the emulator knows is kept.
	req.Prev = ids
	again, err := m.Make(ctx, req)
	if err != nil {
		t.Fatalf("second Make: %v", err)
	}
	if again.Operator != ids.Operator || again.DR != ids.DR || again.Processors[env.SlotPrimary] != ids.Processors[env.SlotPrimary] {
		t.Errorf("second Make made new credentials; want the known ones kept")
	}
	// A stale record (credentials the emulator does not know) is replaced.
	stale := *ids
	stale.DR.AccessKeyID = "ASIASTALE0000000000"
	req.Prev = &stale
	fresh, err := m.Make(ctx, req)
	if err != nil {
		t.Fatalf("Make with a stale record: %v", err)
	}
	if fresh.DR.AccessKeyID == stale.DR.AccessKeyID || !strings.Contains(fresh.DR.Identity, "payment-dr-automation-t") {
		t.Errorf("DR after a stale record = %+v, want new credentials of the role", fresh.DR)
	}

	if err := srv.EnforceIAM(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckRefused(ctx, srv.Endpoint()); err != nil {
		t.Errorf("CheckRefused once IAM is enforced = %v, want nil", err)
	}
}
