package awsdr

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/dr"
	"paydr/internal/local/faultproxy"
)

const (
	primaryARN   = "arn:aws:rds:us-east-1:123456789012:cluster:payment-cluster-primary-test"
	secondaryARN = "arn:aws:rds:us-west-2:123456789012:cluster:payment-cluster-secondary-test"
	failoverName = "api.pay.example.test"
)

var templates = template.Must(template.ParseGlob("testdata/*.xml"))

func TestStatusFromSurvivingRegion(t *testing.T) {
	w := setUp(t)
	b, _ := connect(t, w)
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := []string{st.Traffic}
	for _, r := range st.Regions {
		got = append(got, regionSummary(r))
	}
	want := []string{"us-east-1",
		"us-east-1 writer " + primaryARN + " reachable=true healthy=true fenced=false",
		"us-west-2 standby " + secondaryARN + " reachable=true healthy=false fenced=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() regions (-want +got):\n%s", diff)
	}
	if h := st.Regions[1].Health; !strings.Contains(h, "http://us-west-2.api.test/health: HTTP 503") {
		t.Errorf("Status() us-west-2 health = %q, want the 503 of its /health", h)
	}
	wantRep := dr.Replication{Known: true, Streaming: true, State: "connected", LagBytes: -1, ReplayLag: 120 * time.Millisecond, RPOLag: 900 * time.Millisecond}
	if diff := cmp.Diff(wantRep, st.Replication); diff != "" {
		t.Errorf("Status().Replication (-want +got):\n%s", diff)
	}
	// The bound on loss: the deployment's, and where it is enforced, read
	// in each region.
	if st.RPOTarget != 5*time.Minute || st.Regions[0].RPOBound != 5*time.Minute || st.Regions[1].RPOBound != 0 {
		t.Errorf("Status() bound %s, enforced on us-east-1 %s, on us-west-2 %s; want 5m0s, 5m0s (the writer), none (the standby)", st.RPOTarget, st.Regions[0].RPOBound, st.Regions[1].RPOBound)
	}
	want = []string{
		"us-east-1 DescribeDBClusterParameters DBClusterParameterGroupName=payment-cluster-primary-test-1 Source=user",
		"us-west-2 DescribeDBClusterParameters DBClusterParameterGroupName=payment-cluster-secondary-test-1 Source=user",
		"us-west-2 DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test",
	}
	if diff := cmp.Diff(want, slices.Sorted(slices.Values(w.rds.calls()))); diff != "" {
		t.Errorf("RDS requests (-want +got):\n%s", diff)
	}
}

func TestStatusStaysFastWhileARegionBlackHoles(t *testing.T) {
	w := setUp(t)
	b, _ := connect(t, w)
	b.ProbeTimeout = 300 * time.Millisecond
	w.api["us-east-1"].setMode(apiBlackhole)
	if err := w.proxy.SetRules(faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Blackhole}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := b.Status(context.Background())
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Every probe runs at once: about one ProbeTimeout, two at most
	// (describe, then the lag of the secondary it names).
	if took > 4*b.ProbeTimeout {
		t.Errorf("Status() took %s while us-east-1 black-holes, want about %s (probes run at once, each bounded)", took, b.ProbeTimeout)
	}
	var got []string
	for _, r := range st.Regions {
		got = append(got, regionSummary(r))
	}
	want := []string{
		"us-east-1 writer " + primaryARN + " reachable=false healthy=false fenced=false",
		"us-west-2 standby " + secondaryARN + " reachable=true healthy=false fenced=false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() regions (-want +got):\n%s", diff)
	}
	notes := strings.Join(st.Notes, "\n")
	for _, want := range []string{"us-east-1: get function concurrency", "route53 health check " + w.topo.Primary.HealthCheckID + " not read"} {
		if !strings.Contains(notes, want) {
			t.Errorf("Status().Notes = %q, want a note %q", st.Notes, want)
		}
	}
	// Route 53 answers with the primary while every region fails.
	if st.Traffic != "us-east-1" {
		t.Errorf("Status().Traffic = %q, want us-east-1 (DNS answers the primary when both checks fail)", st.Traffic)
	}
}

func TestDryRunPrintsExactCalls(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	j, _ := dr.OpenJournal(t.TempDir())
	var out strings.Builder
	if _, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Switchover, DryRun: true}, &out); err != nil {
		t.Fatal(err)
	}
	// A switchover is sent to the writer's region (us-east-1), whatever the
	// acting region; the waits describe from the target's.
	want := `dry run: nothing is changed; pass --yes to act
plan: switchover from us-east-1 to us-west-2
 1. fence us-east-1: stop writes in the old writer region so nothing commits that the standby misses
      us-east-1 lambda:PutFunctionConcurrency FunctionName=payment-processor-test ReservedConcurrentExecutions=0
 2. wait-caught-up us-west-2: wait until the standby has applied everything the old writer committed
      us-west-2 cloudwatch:GetMetricData AWS/RDS AuroraGlobalDBReplicationLag,AuroraGlobalDBRPOLag DBClusterIdentifier=payment-cluster-secondary-test (refuse above 1m0s; SwitchoverGlobalCluster itself waits for the secondary to catch up)
 3. relax-rpo us-east-1: stop enforcing the bound on loss in the old writer region, fenced now, so that it never holds one as a standby
      us-east-1 rds:ResetDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-primary-test-1 Parameters=[ParameterName=rds.global_db_rpo,ApplyMethod=immediate]
 4. promote us-west-2: make the standby the writer (planned switchover: no data loss)
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (no call below while its FailoverState shows an operation toward payment-cluster-secondary-test: wait for it)
      us-east-1 rds:SwitchoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=` + secondaryARN + `
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 5ms until payment-cluster-secondary-test is the writer and FailoverState is empty)
 5. rebuild-standby us-east-1: make the old writer a standby of the new writer
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 5ms until payment-cluster-primary-test is a secondary member and FailoverState is empty; Aurora demotes the old writer itself)
 6. enforce-rpo us-west-2 (best effort): enforce the bound on loss on the new writer, now that the old writer replicates from it
      us-west-2 rds:ModifyDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-secondary-test-1 Parameters=[ParameterName=rds.global_db_rpo,ParameterValue=300,ApplyMethod=immediate]
 7. unfence us-west-2: let the new writer region's processor take writes
      us-west-2 lambda:DeleteFunctionConcurrency FunctionName=payment-processor-test
 8. wait-traffic us-west-2: wait until the failover name sends traffic to the new writer
      dns CNAME api.pay.example.test (every 5ms until it answers us-west-2.api.test, the endpoint of us-west-2)
      us-west-2 GET http://us-west-2.api.test/health (until 200: its database takes writes)
 9. verify us-west-2: send a real payment through the failover name and find it in the new writer's ledger
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (payment-cluster-secondary-test must be the writer)
      dns CNAME api.pay.example.test (must answer us-west-2.api.test, the endpoint of us-west-2)
      us-west-2 ssm:GetParameter Name=/paydr/test/api/key WithDecryption=true (the payments API key)
      us-west-2 POST http://api.pay.example.test/payments Authorization: Bearer <key> {"payment_id":"dr-verify-<op-id>","amount":"0.01","currency":"USD"} (the same payment until acknowledged; us-west-2 must have committed it)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if got := w.rds.changes(); len(got) != 0 {
		t.Errorf("dry run sent %v, want only describes", got)
	}
	if c := concurrency(t, w, "us-east-1"); c != nil {
		t.Errorf("dry run fenced us-east-1 (reserved concurrency %d)", *c)
	}
}

func TestSwitchoverIsSentToTheWritersRegion(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	wb := watch(b)
	j, _ := dr.OpenJournal(t.TempDir())
	o, err := dr.Operate(context.Background(), wb, lock, j, dr.Request{Op: dr.Switchover, Owner: "test"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	// Acting from us-west-2, the switchover still goes to us-east-1, where
	// the writer is, as AWS requires. The bound on loss moves with the
	// writer, each group changed in its own region: reset on the fenced
	// old writer before the switchover, set on the new writer after.
	want := []string{
		"us-east-1 ResetDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-primary-test-1 Parameters.Parameter.1.ApplyMethod=immediate Parameters.Parameter.1.ParameterName=rds.global_db_rpo",
		"us-east-1 SwitchoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN,
		"us-west-2 ModifyDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-secondary-test-1 Parameters.Parameter.1.ApplyMethod=immediate Parameters.Parameter.1.ParameterName=rds.global_db_rpo Parameters.Parameter.1.ParameterValue=300",
	}
	if diff := cmp.Diff(want, w.rds.changes()); diff != "" {
		t.Errorf("RDS requests other than describes (-want +got):\n%s", diff)
	}
	if east, west := rpoParameter(t, w, "us-east-1"), rpoParameter(t, w, "us-west-2"); east != "" || west != "300" {
		t.Errorf("rds.global_db_rpo in moto: us-east-1 %q, us-west-2 %q; want unset on the standby, 300 on the writer", east, west)
	}
	if s, _ := o.Step(dr.ActionEnforceRPO, "us-west-2"); s.Error != "" || !strings.Contains(s.Result, "rds.global_db_rpo=300 in payment-cluster-secondary-test-1 (us-west-2)") {
		t.Errorf("enforce-rpo us-west-2 = %+v, want it done", s)
	}
	for _, c := range w.rds.calls() {
		if strings.Contains(c, "DescribeGlobalClusters") && !strings.HasPrefix(c, "us-west-2 ") {
			t.Errorf("RDS request %q, want every describe in us-west-2 (the acting region and target)", c)
		}
	}
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced)", c)
	}
	if c := concurrency(t, w, "us-west-2"); c != nil {
		t.Errorf("us-west-2 reserved concurrency = %d, want none (unfenced)", *c)
	}
	if n := wb.route53InStep.Load(); n != 0 {
		t.Errorf("%d Route 53 API calls during steps, want none", n)
	}
	id := dr.VerifyPaymentID(o.OpID)
	if s, _ := o.Step(dr.ActionVerify, ""); !w.api["us-west-2"].payment(id) || !strings.Contains(s.Result, "committed by us-west-2") {
		t.Errorf("verify result %q; payment %s in us-west-2: %v, want it committed there", s.Result, id, w.api["us-west-2"].payment(id))
	}
}

func TestFailoverUsesFailoverAPIWithDataLoss(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	wb := watch(b)
	// The primary region's processor cannot write: its /health fails and
	// Route 53 answers with the secondary once that one is healthy; its
	// AWS APIs still answer.
	w.api["us-east-1"].setMode(apiDown)
	// A bound left on the standby's group (set by hand, or by an older
	// paydr): the failover must reset it before promoting, or the new
	// writer, with no healthy secondary, would block every commit.
	if _, err := b.regions["us-west-2"].Bound.ModifyDBClusterParameterGroup(context.Background(), &rds.ModifyDBClusterParameterGroupInput{
		DBClusterParameterGroupName: aws.String(w.topo.Secondary.ClusterParameterGroup),
		Parameters:                  []rdstypes.Parameter{{ParameterName: aws.String(RPOParameter), ParameterValue: aws.String("120"), ApplyMethod: rdstypes.ApplyMethodImmediate}},
	}); err != nil {
		t.Fatal(err)
	}
	j, _ := dr.OpenJournal(t.TempDir())
	_, err := dr.Operate(context.Background(), wb, lock, j, dr.Request{Op: dr.Failover, Owner: "test"}, &strings.Builder{})
	var ref *dr.Refusal
	if !errors.As(err, &ref) || ref.Loss == nil || ref.Loss.Window != 900*time.Millisecond {
		t.Fatalf("failover without --allow-data-loss = %v, want a refusal estimating 900ms of loss (the rpo lag)", err)
	}
	var out strings.Builder
	o, err := dr.Operate(context.Background(), wb, lock, j, dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}, &out)
	if err != nil {
		t.Fatalf("failover: %v\n%s", err, out.String())
	}
	snap := SnapshotID("payment-cluster-primary-test", o.OpID)
	want := []string{
		"us-west-2 ModifyDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-secondary-test-1 Parameters.Parameter.1.ApplyMethod=immediate Parameters.Parameter.1.ParameterName=rds.global_db_rpo Parameters.Parameter.1.ParameterValue=120",
		"us-east-1 CreateDBClusterSnapshot DBClusterIdentifier=payment-cluster-primary-test DBClusterSnapshotIdentifier=" + snap,
		"us-west-2 ResetDBClusterParameterGroup DBClusterParameterGroupName=payment-cluster-secondary-test-1 Parameters.Parameter.1.ApplyMethod=immediate Parameters.Parameter.1.ParameterName=rds.global_db_rpo",
		"us-west-2 FailoverGlobalCluster AllowDataLoss=true GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN,
	}
	if diff := cmp.Diff(want, w.rds.changes()); diff != "" {
		t.Errorf("RDS requests other than describe (-want +got):\n%s", diff)
	}
	if got := rpoParameter(t, w, "us-west-2"); got != "" {
		t.Errorf("rds.global_db_rpo of us-west-2, the new writer = %q, want unset", got)
	}
	if !strings.Contains(strings.Join(o.Plan.Warnings, "\n"), "the bound on loss (5m0s) is not enforced on us-west-2 after this failover") {
		t.Errorf("failover warnings = %q, want one saying the bound is not enforced", o.Plan.Warnings)
	}
	if s, _ := o.Step(dr.ActionPreserve, ""); !strings.Contains(s.Result, "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:"+snap) {
		t.Errorf("preserve result = %q, want the snapshot ARN", s.Result)
	}
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced)", c)
	}
	if n := wb.route53InStep.Load(); n != 0 {
		t.Errorf("%d Route 53 API calls during steps, want none", n)
	}
}

// TestRoleChangeWhoseAnswerIsLost: RDS carries out the switchover or
// failover, and its answer is lost; the SDK sends the call again and RDS
// refuses it, an operation being under way. That operation is the one the
// step started: promote waits for it, and the operation completes in the
// one run.
func TestRoleChangeWhoseAnswerIsLost(t *testing.T) {
	for _, op := range []dr.Operation{dr.Switchover, dr.Failover} {
		t.Run(string(op), func(t *testing.T) {
			w := setUp(t)
			b, lock := connect(t, w)
			w.rds.mu.Lock()
			w.rds.loseAnswers = 1
			w.rds.mu.Unlock()
			if op == dr.Failover {
				w.api["us-east-1"].setMode(apiDown)
			}
			j, _ := dr.OpenJournal(t.TempDir())
			var out strings.Builder
			o, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: op, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}, &out)
			if err != nil {
				t.Fatalf("%s whose role-change answer was lost: %v\n%s", op, err, out.String())
			}
			s, _ := o.Step(dr.ActionPromote, "us-west-2")
			t.Logf("promote us-west-2: %s", s.Result)
			if !strings.Contains(s.Result, "its answer was lost") || !strings.Contains(s.Result, "payment-cluster-secondary-test is the writer") {
				t.Errorf("promote us-west-2 result = %q, want the lost answer found under way and the new writer", s.Result)
			}
			var calls int
			for _, c := range w.rds.changes() {
				if strings.Contains(c, "GlobalCluster ") {
					calls++
				}
			}
			if calls != 2 {
				t.Errorf("%d role-change requests, want 2 (the call and the SDK's retry)", calls)
			}
		})
	}
}

// TestResumeDuringPendingDoesNotCallAgain crashes an operator right after
// FailoverGlobalCluster was accepted; the global cluster then reports the
// failover in FailoverState, pending for a few describes while its own
// Status still says available. Running the operation again resumes at the
// promote step, which must wait for that failover, not start another.
func TestResumeDuringPendingDoesNotCallAgain(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	w.api["us-east-1"].setMode(apiDown)
	w.rds.mu.Lock()
	// Pending long enough for the resumed run's observations (every
	// guarded step is checked against a fresh Status) and its promote.
	w.rds.pendingDescribes = 10
	crash, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.rds.cancelAfterChange = cancel
	w.rds.mu.Unlock()
	j, _ := dr.OpenJournal(t.TempDir())
	req := dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}
	var first strings.Builder
	if _, err := dr.Operate(crash, b, lock, j, req, &first); !errors.Is(err, context.Canceled) {
		t.Fatalf("failover interrupted during promote = %v, want context.Canceled\n%s", err, first.String())
	}
	if u, err := j.Unfinished(); err != nil || u == nil {
		t.Fatalf("journal after the crash: unfinished %v, %v; want the failover", u, err)
	}
	var out strings.Builder
	o, err := dr.Operate(context.Background(), b, lock, j, req, &out)
	if err != nil {
		t.Fatalf("resumed failover: %v\n%s", err, out.String())
	}
	var failovers []string
	for _, c := range w.rds.changes() {
		if strings.Contains(c, "FailoverGlobalCluster") {
			failovers = append(failovers, c)
		}
	}
	want := []string{"us-west-2 FailoverGlobalCluster AllowDataLoss=true GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN}
	if diff := cmp.Diff(want, failovers); diff != "" {
		t.Errorf("FailoverGlobalCluster requests across the crash (-want +got):\n%s", diff)
	}
	s, _ := o.Step(dr.ActionPromote, "us-west-2")
	if !strings.Contains(s.Result, "(pending) was already under way (not called again)") {
		t.Errorf("resumed promote result = %q, want it to have found the pending failover", s.Result)
	}
}

// TestDynamoLockWriteAnsweredTwice: the lock's conditional write reaches
// DynamoDB twice, the first answer lost (an SDK retry after a dropped
// response does exactly this). The second sees the first's item: that is
// this operator's own lock, held, not someone else's.
func TestDynamoLockWriteAnsweredTwice(t *testing.T) {
	w := setUp(t)
	_, lock := connect(t, w)
	ctx := context.Background()
	twice := *lock
	twice.API = putTwice{lock.API}
	unlock, err := twice.Lock(ctx, dr.LockInfo{Owner: "alice", Host: "h1", PID: 1, Op: "failover", Time: time.Now()})
	if err != nil {
		t.Fatalf("Lock() whose write was carried out twice = %v, want the lock (the item is its own)", err)
	}
	_, err = lock.Lock(ctx, dr.LockInfo{Owner: "bob", Host: "h2", PID: 2, Op: "switchover"})
	var le *dr.LockedError
	if !errors.As(err, &le) || le.Holder.Owner != "alice" {
		t.Fatalf("bob's Lock() = %v, want held by alice", err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Lock(ctx, dr.LockInfo{Owner: "bob", Host: "h2", PID: 2}); err != nil {
		t.Errorf("bob's Lock() after alice's unlock = %v, want the lock", err)
	}
}

// putTwice sends each PutItem twice and answers the second's result.
type putTwice struct{ LockAPI }

func (p putTwice) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, err := p.LockAPI.PutItem(ctx, in, opts...); err != nil {
		return nil, err
	}
	return p.LockAPI.PutItem(ctx, in, opts...)
}

func TestDynamoLockContention(t *testing.T) {
	w := setUp(t)
	_, lock := connect(t, w)
	ctx := context.Background()
	unlock, err := lock.Lock(ctx, dr.LockInfo{Owner: "alice", Host: "h1", PID: 1, Op: "failover", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = lock.Lock(ctx, dr.LockInfo{Owner: "bob", Host: "h2", PID: 2, Op: "switchover"})
	var le *dr.LockedError
	if !errors.As(err, &le) || le.Holder.Owner != "alice" || le.Holder.Op != "failover" {
		t.Fatalf("second Lock() = %v, want held by alice for failover", err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	unlock, err = lock.Lock(ctx, dr.LockInfo{Owner: "bob", Host: "h2", PID: 2})
	if err != nil {
		t.Fatalf("Lock() after unlock = %v", err)
	}
	unlock(ctx)
	// An expired lock is taken over.
	expired := *lock
	expired.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	if _, err := expired.Lock(ctx, dr.LockInfo{Owner: "crashed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Lock(ctx, dr.LockInfo{Owner: "carol"}); err != nil {
		t.Errorf("Lock() over an expired lock = %v", err)
	}
}
