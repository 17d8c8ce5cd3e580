package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"paydr/internal/dr/localdr"
	"paydr/internal/local/env"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"
	"paydr/internal/sessions"
)

// configAs returns an SDK configuration for region on the emulator with
// credentials c.
func configAs(m *env.Manifest, region string, c env.Credentials) aws.Config {
	return aws.Config{APIOptions: sdkhttp.APIOptions(), Region: region, BaseEndpoint: aws.String(m.Moto.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)}
}

// checkIAM asserts that the emulator enforces IAM after paydr up and that
// each component runs as its role: the processors on their regions'
// processor roles, DR calls on the DR role. The processors' own calls are
// allowed (checkPayment finds the session cache entry they wrote); a role
// is refused what it does not grant; and taking the cache writes out of the
// primary processor's policy makes its next cache write fail, which the
// session table shows, so the test fails when a grant the code needs is
// missing.
func checkIAM(t *testing.T, m *env.Manifest) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := m.Moto.IAM
	if ids == nil || !ids.Enforced {
		t.Fatalf("Moto.IAM = %+v, want enforced", ids)
	}
	p := m.Regions[env.SlotPrimary]
	table := output(t, m, "sessions_table_name")

	// The emulator's default credentials no longer work.
	if _, err := iam.NewFromConfig(configAs(m, p.Name, env.TestCredentials)).ListUsers(ctx, &iam.ListUsersInput{}); err == nil {
		t.Errorf("ListUsers with moto's test credentials succeeded; want refused once IAM is enforced")
	}

	// Who is who.
	if want := "user/paydr-operator-" + m.Suffix; !strings.HasSuffix(ids.Operator.Identity, want) {
		t.Errorf("operator identity = %q, want ...%s", ids.Operator.Identity, want)
	}
	if want := ":assumed-role/payment-dr-automation-" + m.Suffix + "/"; !strings.Contains(ids.DR.Identity, want) {
		t.Errorf("DR identity = %q, want the DR automation role (%s)", ids.DR.Identity, want)
	}
	for _, s := range env.Slots {
		r := m.Regions[s]
		c := ids.Processors[s]
		if want := ":assumed-role/payment-processor-" + r.Name + "-" + m.Suffix + "/"; !strings.Contains(c.Identity, want) {
			t.Errorf("%s processor identity = %q, want its region's processor role (%s)", s, c.Identity, want)
		}
		if r.Processor.Env["AWS_ACCESS_KEY_ID"] != c.AccessKeyID || r.Processor.Env["AWS_SESSION_TOKEN"] != c.SessionToken || c.SessionToken == "" {
			t.Errorf("%s processor runs with AWS_ACCESS_KEY_ID %q, want its role's %q with a session token", s, r.Processor.Env["AWS_ACCESS_KEY_ID"], c.AccessKeyID)
		}
	}

	// A role is refused what it does not grant: the processor may not
	// delete from the session table, the DR role may not publish events.
	proc := configAs(m, p.Name, ids.Processors[env.SlotPrimary])
	_, err := dynamodb.NewFromConfig(proc).DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "x"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "x"}}})
	if !mototest.Denied(err) {
		t.Errorf("DeleteItem as the processor role = %v, want AccessDenied (the role grants no DeleteItem)", err)
	}
	_, err = eventbridge.NewFromConfig(configAs(m, p.Name, ids.DR)).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(m.OutputString("primary_event_bus_name")), Source: aws.String("paydr.test"), DetailType: aws.String("t"), Detail: aws.String("{}")}}})
	if !mototest.Denied(err) {
		t.Errorf("PutEvents as the DR role = %v, want AccessDenied", err)
	}
	// The DR role reads the API key (DR verify and drills send it).
	if _, err := localdr.APIKey(ctx, m, p.Name); err != nil {
		t.Errorf("the API key as the DR role: %v", err)
	}

	// The control: without its cache-write grants, the primary processor's
	// cache write is refused. The payment still commits (the cache is not
	// the record) but the session table lacks it.
	im := iam.NewFromConfig(configAs(m, p.Name, ids.Operator))
	roleName := roleOfARN(output(t, m, "primary_processor_role_arn"))
	got, err := im.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("payment-processor")})
	if err != nil {
		t.Fatalf("GetRolePolicy %s/payment-processor: %v", roleName, err)
	}
	original, err := url.QueryUnescape(aws.ToString(got.PolicyDocument))
	if err != nil {
		t.Fatal(err)
	}
	reduced, removed := withoutActions(t, original, "dynamodb:PutItem", "dynamodb:BatchWriteItem")
	if removed != 2 {
		t.Fatalf("the processor policy grants %d of dynamodb:PutItem and BatchWriteItem, want both:\n%s", removed, original)
	}
	put := func(doc string) {
		t.Helper()
		if _, err := im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("payment-processor"), PolicyDocument: aws.String(doc)}); err != nil {
			t.Fatalf("PutRolePolicy %s: %v", roleName, err)
		}
	}
	put(reduced)
	restored := false
	t.Cleanup(func() {
		if !restored {
			put(original)
		}
	})
	key, err := localdr.APIKey(ctx, m, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	store := sessions.New(dynamodb.NewFromConfig(configAs(m, p.Name, ids.Operator)), table, sessions.Options{})
	pay := func(what string) (cached bool) {
		t.Helper()
		id := fmt.Sprintf("local-iam-%s-%d", what, time.Now().UnixNano())
		body := fmt.Sprintf(`{"payment_id":%q,"amount":"1.00","currency":"USD","session_id":"s-iam"}`, id)
		if status, _, b := post(t, m.Router.URL, key, body); status != http.StatusCreated {
			t.Fatalf("POST (%s) = %d %s, want 201", what, status, b)
		}
		_, found, err := store.Lookup(ctx, id)
		if err != nil {
			t.Fatalf("Lookup %s: %v", id, err)
		}
		return found
	}
	if pay("denied") {
		t.Errorf("the session cache holds a payment written without dynamodb:PutItem and BatchWriteItem: the emulator does not enforce the processor's policy")
	}
	put(original)
	restored = true
	if !pay("allowed") {
		t.Errorf("the session cache lacks a payment written with the stack's processor policy")
	}
}

// withoutActions returns the policy doc without the given actions, and how
// many of them it granted.
func withoutActions(t *testing.T, doc string, actions ...string) (string, int) {
	t.Helper()
	var p struct {
		Version   string           `json:"Version"`
		Statement []map[string]any `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatalf("policy: %v\n%s", err, doc)
	}
	removed := 0
	var kept []map[string]any
	for _, st := range p.Statement {
		var acts []string
		switch a := st["Action"].(type) {
		case string:
			acts = []string{a}
		case []any:
			for _, x := range a {
				acts = append(acts, x.(string))
			}
		}
		var left []string
		for _, a := range acts {
			if slices.Contains(actions, a) {
				removed++
				continue
			}
			left = append(left, a)
		}
		if len(left) == 0 {
			continue
		}
		st["Action"] = left
		kept = append(kept, st)
	}
	p.Statement = kept
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), removed
}

// roleOfARN returns the role name of arn:aws:iam::<account>:role/<name>.
func roleOfARN(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }
