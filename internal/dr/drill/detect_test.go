package drill

import (
	"context"
	"strings"
	"testing"
	"time"
)

// eventsEnv is a Env whose health events are fixed.
type eventsEnv struct {
	Env
	evs []Event
}

func (e eventsEnv) HealthEvents(context.Context) ([]Event, error) { return e.evs, nil }

func TestWaitDetection(t *testing.T) {
	fault := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	at := func(s int) time.Time { return fault.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name    string
		evs     []Event
		want    time.Time
		wantErr bool
	}{
		{"unhealthy after the fault", []Event{
			{Time: at(-20), Kind: "healthy", Region: "us-east-1"},
			{Time: at(3), Kind: "unhealthy", Region: "us-east-1"},
		}, at(3), false},
		{"already unhealthy at the fault", []Event{
			{Time: at(-20), Kind: "healthy", Region: "us-east-1"},
			{Time: at(-2), Kind: "unhealthy", Region: "us-east-1"},
		}, fault, false},
		{"recovered before the fault, never failed after", []Event{
			{Time: at(-20), Kind: "unhealthy", Region: "us-east-1"},
			{Time: at(-5), Kind: "healthy", Region: "us-east-1"},
			{Time: at(2), Kind: "unhealthy", Region: "us-west-2"},
		}, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := waitDetection(context.Background(), eventsEnv{evs: tt.evs}, "us-east-1", fault, 300*time.Millisecond)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("waitDetection() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	base := Options{Fault: FaultKillDB}.withDefaults(time.Now())
	tests := []struct {
		name   string
		change func(*Options)
		want   string // "" for valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"cut before the fault", func(o *Options) { o.CutReplication = 3 * time.Second }, ""},
		{"unknown fault", func(o *Options) { o.Fault = "meteor" }, `fault "meteor" is not one of`},
		{"cut with a switchover (expects a refusal)", func(o *Options) { o.Fault, o.CutReplication = FaultSwitchover, time.Second }, ""},
		{"cut longer than fault-after", func(o *Options) { o.CutReplication = 5 * time.Second }, "must be shorter than fault-after 5s"},
		{"negative cut", func(o *Options) { o.CutReplication = -time.Second }, "is negative"},
		{"fault after the end", func(o *Options) { o.FaultAfter = time.Minute }, "must be shorter than duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.change(&o)
			err := o.Validate()
			if tt.want == "" && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
