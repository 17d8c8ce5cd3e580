package stack

import (
	"encoding/json"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// grantWithoutCall explains a granted action that no Go code calls: another
// component uses it with the role's credentials, or AWS requires it beside
// an operation the code calls.
type grantWithoutCall map[string]string

// processorGrants are the processor role's actions that its code does not
// call itself.
var processorGrants = grantWithoutCall{
	"kms:Decrypt":              "the session table, the database secret and the API key parameter are encrypted with paydr's key: DynamoDB, Secrets Manager and SSM (GetParameter with decryption) decrypt with the caller's permission (kms:ViaService)",
	"kms:GenerateDataKey":      "writes to the session table under paydr's key, as AWS CDK grants writers of a table under a customer managed key (kept: not yet shown unneeded in a real account)",
	"logs:CreateLogStream":     "the Lambda service writes the function's logs to its log group with the execution role",
	"logs:PutLogEvents":        "the Lambda service writes the function's logs to its log group with the execution role",
	"xray:PutTraceSegments":    "active tracing: the Lambda service sends the function's trace segments with the execution role",
	"xray:PutTelemetryRecords": "active tracing: the Lambda service sends the function's trace telemetry with the execution role",
}

// provisionerGrants are the provisioning function's role's actions that
// paydr/internal/provisioner does not call itself.
var provisionerGrants = grantWithoutCall{
	"kms:Decrypt":              "both database secrets are encrypted with paydr's key: Secrets Manager decrypts with the caller's permission (kms:ViaService)",
	"logs:CreateLogStream":     "the Lambda service writes the function's logs to its log group with the execution role",
	"logs:PutLogEvents":        "the Lambda service writes the function's logs to its log group with the execution role",
	"xray:PutTraceSegments":    "active tracing: the Lambda service sends the function's trace segments with the execution role",
	"xray:PutTelemetryRecords": "active tracing: the Lambda service sends the function's trace telemetry with the execution role",
}

// drGrants are the DR automation role's actions that paydr/internal/dr/awsdr
// does not call itself.
var drGrants = grantWithoutCall{
	"kms:Decrypt":           "the DR lock is an item of the session table, and the API key the verify payment carries a SecureString, both encrypted with paydr's key: DynamoDB and SSM decrypt with the caller's permission",
	"rds:AddTagsToResource": "a dependent action of CreateDBClusterSnapshot (Service Authorization Reference): the final snapshot takes the cluster's tags (copy_tags_to_snapshot)",
}

// TestRolesGrantWhatTheCodeCalls checks, statically, that each role grants
// every AWS operation the code that runs under it calls (found by
// type-checking the packages each binary links), and that every action it
// grants is either called or explained: a call without a grant is an
// AccessDenied in production, a grant without a call is privilege nobody
// needs.
func TestRolesGrantWhatTheCodeCalls(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, role := range []struct {
		name     string
		code     string // the package whose linked code runs under the role
		policies []string
		extra    grantWithoutCall
	}{
		// The Lambda binary, with everything it links.
		{"processor", "paydr/cmd/processor", []string{"primary_processor", "secondary_processor"}, processorGrants},
		// The same binary in provisioning mode runs only the provisioner
		// (cmd/processor's main chooses it before the processor is wired).
		{"provisioner", "paydr/internal/provisioner", []string{"provisioner"}, provisionerGrants},
		// paydr dr acts through awsdr (and what it links): the CLI's other
		// AWS calls (local environments, deploys) run with other identities.
		{"dr automation", "paydr/internal/dr/awsdr", []string{"dr_automation"}, drGrants},
	} {
		t.Run(role.name, func(t *testing.T) {
			calls := awsCalls(t, role.code)
			if len(calls) == 0 {
				t.Fatalf("found no AWS calls in %s: the scan is broken", role.code)
			}
			for _, name := range role.policies {
				granted := policyActions(t, document(t, d.res(t, "aws_iam_role_policy", name)["policy"]))
				for _, action := range ungranted(calls, granted) {
					t.Errorf("aws_iam_role_policy.%s does not grant %s, which the %s calls at %s", name, action, role.name, strings.Join(calls[action], ", "))
				}
				for _, g := range granted {
					if _, called := calls[g]; !called && role.extra[g] == "" {
						t.Errorf("aws_iam_role_policy.%s grants %s, which no code of the %s calls and nothing explains: remove it, or say why it is needed", name, g, role.name)
					}
				}
				for _, g := range sortedKeys(role.extra) {
					if !grants(granted, g) {
						t.Errorf("aws_iam_role_policy.%s lacks %s, needed because %s", name, g, role.extra[g])
					}
				}
			}
		})
	}
}

// TestAWSCallScanFindsCalls shows the scan finding operations called through
// an interface the code defines, through a paginator, and under an IAM
// prefix other than the package name (eventbridge: events), and the check
// failing on a grant taken away: the processor's policy without
// dynamodb:BatchWriteItem (the grant sessions.Save lacked).
func TestAWSCallScanFindsCalls(t *testing.T) {
	calls := awsCalls(t, "paydr/cmd/processor")
	granted := policyActions(t, document(t, parse(t, synth(t, Defaults())).res(t, "aws_iam_role_policy", "primary_processor")["policy"]))
	if got := ungranted(calls, granted); len(got) != 0 {
		t.Errorf("ungranted(processor calls, processor policy) = %v, want none", got)
	}
	without := slices.DeleteFunc(slices.Clone(granted), func(a string) bool { return a == "dynamodb:BatchWriteItem" })
	eq(t, "ungranted without BatchWriteItem", ungranted(calls, without), []string{"dynamodb:BatchWriteItem"})
	for action, site := range map[string]string{
		"dynamodb:BatchWriteItem": "internal/sessions/sessions.go",
		"dynamodb:Query":          "internal/sessions/sessions.go", // dynamodb.NewQueryPaginator
		"events:PutEvents":        "internal/events/events.go",
		"ssm:GetParameter":        "internal/apikey/ssmkey/ssmkey.go", // the API key
	} {
		if len(calls[action]) == 0 || !strings.HasPrefix(calls[action][0], site+":") {
			t.Errorf("awsCalls(paydr/cmd/processor)[%s] = %v, want a call in %s", action, calls[action], site)
		}
	}
}

// ungranted returns the called actions that granted does not allow, sorted.
func ungranted(calls map[string][]string, granted []string) []string {
	var out []string
	for _, action := range sortedKeys(calls) {
		if !grants(granted, action) {
			out = append(out, action)
		}
	}
	return out
}

// grants reports whether a policy's actions allow action (IAM actions are
// case-insensitive and may end in wildcards).
func grants(granted []string, action string) bool {
	for _, g := range granted {
		if ok, _ := path.Match(strings.ToLower(g), strings.ToLower(action)); ok {
			return true
		}
	}
	return false
}

// policyActions returns the actions of a policy document's Allow statements.
func policyActions(t testing.TB, doc map[string]any) []string {
	t.Helper()
	var out []string
	for _, s := range statements(t, doc) {
		if s["Effect"] != "Allow" {
			continue
		}
		out = append(out, stringsOf(s["Action"])...)
	}
	return out
}

// statements returns a policy document's statements.
func statements(t testing.TB, doc map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	switch st := doc["Statement"].(type) {
	case []any:
		for _, s := range st {
			out = append(out, s.(map[string]any))
		}
	case map[string]any:
		out = append(out, st)
	default:
		t.Fatalf("policy has no statements: %v", doc)
	}
	return out
}

// stringsOf returns a string or a list of strings as a list.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// document decodes a JSON document argument (a policy), whether it is
// literal JSON or a jsonencode expression: its literal parts become JSON
// values, and each part Terraform computes becomes its expression's source
// text in ${…}.
func document(t testing.TB, v any) map[string]any {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("document = %v, want a string", v)
	}
	if !strings.HasPrefix(s, "${") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", s, err)
		}
		return m
	}
	src := []byte(s)
	expr, diags := hclsyntax.ParseTemplate(src, "document", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("document %q: %v", s, diags)
	}
	wrap, ok := expr.(*hclsyntax.TemplateWrapExpr)
	if !ok {
		t.Fatalf("document %q is not one expression", s)
	}
	call, ok := wrap.Wrapped.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "jsonencode" || len(call.Args) != 1 {
		t.Fatalf("document %q is not jsonencode(…)", s)
	}
	m, ok := hclValue(call.Args[0], src).(map[string]any)
	if !ok {
		t.Fatalf("document %q does not encode an object", s)
	}
	return m
}

// hclValue converts an HCL expression to the Go value jsonencode would
// encode, with computed parts as "${<source>}".
func hclValue(e hclsyntax.Expression, src []byte) any {
	switch x := e.(type) {
	case *hclsyntax.ObjectConsExpr:
		m := map[string]any{}
		for _, item := range x.Items {
			k, _ := hclValue(item.KeyExpr, src).(string)
			m[k] = hclValue(item.ValueExpr, src)
		}
		return m
	case *hclsyntax.ObjectConsKeyExpr:
		if x.ForceNonLiteral {
			return "${" + string(x.Range().SliceBytes(src)) + "}"
		}
		if name := hcl.ExprAsKeyword(x.Wrapped); name != "" {
			return name
		}
		return hclValue(x.Wrapped, src)
	case *hclsyntax.TupleConsExpr:
		l := make([]any, len(x.Exprs))
		for i, el := range x.Exprs {
			l[i] = hclValue(el, src)
		}
		return l
	}
	if tmpl, ok := e.(*hclsyntax.TemplateExpr); ok && !tmpl.IsStringLiteral() {
		// A string with interpolations reads as Terraform JSON writes it.
		return strings.TrimSuffix(strings.TrimPrefix(string(tmpl.Range().SliceBytes(src)), `"`), `"`)
	}
	if v, diags := e.Value(nil); !diags.HasErrors() && v.IsWhollyKnown() {
		var out any
		b, err := ctyjson.Marshal(v, v.Type())
		if err == nil && json.Unmarshal(b, &out) == nil {
			return out
		}
	}
	return "${" + string(e.Range().SliceBytes(src)) + "}"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
