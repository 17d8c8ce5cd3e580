package awsdr

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/dr"
	"paydr/internal/local/faultproxy"
)

// TestFailoverWithoutUSEast1 takes us-east-1 away the hardest way: every
// AWS request signed for it (and Route 53's and IAM's, whose control planes
// live there) is black-holed by the fault proxy, and its API endpoint holds
// every request until the client gives up. paydr dr failover
// --allow-data-loss, acting from us-west-2, must still complete, bounded in
// time: the promotion in us-west-2, traffic judged from DNS and /health,
// and a verify payment committed by us-west-2, with no step waiting on
// Route 53's API. Fencing and preserving us-east-1 are attempted and fail
// (best effort).
func TestFailoverWithoutUSEast1(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	b.Poll, b.Wait, b.ProbeTimeout, b.CallTimeout = 10*time.Millisecond, 10*time.Second, 300*time.Millisecond, 500*time.Millisecond
	wb := watch(b)
	w.api["us-east-1"].setMode(apiBlackhole)
	if err := w.proxy.SetRules(faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Blackhole}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j, err := dr.OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}

	// The dry run names where every call goes: the promotion and its waits
	// in us-west-2 only.
	dryReq := req
	dryReq.DryRun = true
	var dry strings.Builder
	if _, err := dr.Operate(ctx, wb, lock, j, dryReq, &dry); err != nil {
		t.Fatalf("dry run: %v\n%s", err, dry.String())
	}
	wantPromote := []string{
		"us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (no call below while its FailoverState shows an operation toward payment-cluster-secondary-test: wait for it)",
		"us-west-2 rds:FailoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN + " AllowDataLoss=true",
		"us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 10ms until payment-cluster-secondary-test is the writer and FailoverState is empty)",
	}
	if diff := cmp.Diff(wantPromote, b.Calls(dr.Step{Action: dr.ActionPromote, Region: "us-west-2", Peer: "us-east-1", Mode: dr.ModeFailover})); diff != "" {
		t.Errorf("Calls(promote us-west-2) (-want +got):\n%s", diff)
	}
	if strings.Contains(dry.String(), "route53") {
		t.Errorf("dry run lists a Route 53 API call:\n%s", dry.String())
	}

	start := time.Now()
	var out strings.Builder
	o, err := dr.Operate(ctx, wb, lock, j, req, &out)
	took := time.Since(start)
	// Done, or done owing the fence and snapshot of the lost region (the
	// operation then stays open until us-east-1 answers again).
	var inc *dr.IncompleteError
	if err != nil && !(errors.As(err, &inc) && inc.To == "us-west-2") {
		t.Fatalf("failover without us-east-1: %v\n%s", err, out.String())
	}
	t.Logf("failover without us-east-1 took %s (err %v)", took.Round(time.Millisecond), err)
	if took > 15*time.Second {
		t.Errorf("failover without us-east-1 took %s, want it bounded by the probe and call timeouts (under 15s)", took)
	}

	// relax-rpo resets the bound on loss in us-west-2's own group: the
	// new writer commits without a secondary, and without us-east-1.
	want := []string{
		"us-west-2 ResetDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-secondary-test-1 Parameters.Parameter.1.ApplyMethod=immediate Parameters.Parameter.1.ParameterName=rds.global_db_rpo",
		"us-west-2 FailoverGlobalCluster AllowDataLoss=true GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN,
	}
	if diff := cmp.Diff(want, w.rds.changes()); diff != "" {
		t.Errorf("RDS role changes that reached the emulator (-want +got):\n%s", diff)
	}
	for _, c := range w.rds.calls() {
		if !strings.HasPrefix(c, "us-west-2 ") {
			t.Errorf("RDS request %q reached the emulator, want only us-west-2's (us-east-1 is gone)", c)
		}
	}
	if s, _ := o.Step(dr.ActionPromote, "us-west-2"); !strings.Contains(s.Result, "FailoverGlobalCluster with AllowDataLoss in us-west-2") {
		t.Errorf("promote result = %q, want FailoverGlobalCluster with AllowDataLoss in us-west-2", s.Result)
	}

	// The lost region's fence and snapshot were attempted, and failed.
	for _, a := range []dr.Action{dr.ActionFence, dr.ActionPreserve} {
		var errs []string
		for _, s := range o.Steps {
			if s.Step.Action == a && s.Step.Region == "us-east-1" {
				errs = append(errs, s.Error)
			}
		}
		if len(errs) == 0 || errs[0] == "" || !strings.Contains(errs[0], "deadline exceeded") {
			t.Errorf("%s us-east-1: errors %q, want it attempted and failed at the call deadline", a, errs)
		}
	}
	attempted := map[string]bool{}
	for _, r := range w.proxy.Requests() {
		if r.Region == "us-east-1" && r.Fault == faultproxy.Blackhole {
			attempted[r.Service+" "+r.Method] = true
		}
	}
	for _, want := range []string{"lambda PUT", "rds POST"} {
		if !attempted[want] {
			t.Errorf("black-holed us-east-1 requests %v, want a %s (fence, snapshot)", attempted, want)
		}
	}

	// No step waited on Route 53's API; Status's best-effort reads of it
	// were black-holed and did not matter.
	if n := wb.route53InStep.Load(); n != 0 {
		t.Errorf("%d Route 53 API calls during steps, want none", n)
	}
	for _, r := range w.proxy.Requests() {
		if r.Service == "route53" && r.Fault != faultproxy.Blackhole {
			t.Errorf("route53 request %+v went through, want it black-holed with us-east-1", r)
		}
	}

	id := dr.VerifyPaymentID(o.OpID)
	if !w.api["us-west-2"].payment(id) {
		t.Errorf("payment %s is not in us-west-2, want the verify payment committed there", id)
	}
	if s, _ := o.Step(dr.ActionVerify, "us-west-2"); !strings.Contains(s.Result, "committed by us-west-2") {
		t.Errorf("verify result = %q, want the payment committed by us-west-2", s.Result)
	}
	if c := concurrency(t, w, "us-west-2"); c != nil {
		t.Errorf("us-west-2 reserved concurrency = %d, want none (unfenced)", *c)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Region("us-west-2"); r.Role != dr.RoleWriter || !r.Healthy || st.Traffic != "us-west-2" {
		t.Errorf("after the failover: us-west-2 %s healthy=%v, traffic to %q; want the healthy writer taking the traffic", r.Role, r.Healthy, st.Traffic)
	}
}
