package awsdr

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"paydr/internal/dr"
)

// silentMetrics answers no lag data while silent is set: a new secondary
// that has not published AuroraGlobalDBRPOLag yet.
type silentMetrics struct {
	*fakeMetrics
	silent *atomic.Bool
}

func (m silentMetrics) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	if m.silent.Load() && m.rds.isWriter(secondaryARN) {
		return &cloudwatch.GetMetricDataOutput{}, nil
	}
	return m.fakeMetrics.GetMetricData(ctx, in, opts...)
}

// TestEnforceRPOWaitsForTheNewSecondary: right after a switchover the new
// secondary (us-east-1) has published no lag yet, so paydr cannot tell that
// it replicates within the bound; enforce-rpo waits (owed), the new writer
// is unfenced and verified anyway, and the operation stays open. Run again
// once the lag is published, it sets rds.global_db_rpo on the new writer's
// group and closes.
func TestEnforceRPOWaitsForTheNewSecondary(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	var silent atomic.Bool
	silent.Store(true)
	for r, c := range b.regions {
		c.Metrics = silentMetrics{&fakeMetrics{t: t, rds: w.rds, replication: 120, rpo: 900}, &silent}
		b.regions[r] = c
	}
	j, _ := dr.OpenJournal(t.TempDir())
	var out strings.Builder
	o, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Switchover, Owner: "test"}, &out)
	var inc *dr.IncompleteError
	if !errors.As(err, &inc) || len(inc.Owed) != 1 || inc.Owed[0].Step.Name() != "enforce-rpo us-west-2" {
		t.Fatalf("switchover while the new secondary publishes no lag = %v, want an *IncompleteError owing enforce-rpo us-west-2\n%s", err, out.String())
	}
	if s, _ := o.Step(dr.ActionVerify, "us-west-2"); s.Error != "" || s.End.IsZero() {
		t.Errorf("verify us-west-2 = %+v, want the new writer verified while the bound waits", s)
	}
	if east, west := rpoParameter(t, w, "us-east-1"), rpoParameter(t, w, "us-west-2"); east != "" || west != "" {
		t.Errorf("rds.global_db_rpo: us-east-1 %q, us-west-2 %q; want both unset while the bound waits", east, west)
	}

	silent.Store(false)
	out.Reset()
	if _, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Switchover, Owner: "test"}, &out); err != nil {
		t.Fatalf("switchover run again with the lag published = %v\n%s", err, out.String())
	}
	if west := rpoParameter(t, w, "us-west-2"); west != "300" {
		t.Errorf("rds.global_db_rpo of us-west-2 = %q, want 300 (enforced on the new writer)", west)
	}
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Region("us-west-2"); r.RPOBound != st.RPOTarget {
		t.Errorf("Status() us-west-2 bound = %s, want %s", r.RPOBound, st.RPOTarget)
	}
}
