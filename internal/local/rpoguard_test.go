package local

import (
	"strings"
	"testing"
	"time"
)

func TestUpOptionsRPOBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		o       UpOptions
		want    time.Duration
		wantErr string
	}{
		{"default: the mission's rpo", UpOptions{}, DefaultRPOBound, ""},
		{"a bound", UpOptions{RPOBound: 2 * time.Second}, 2 * time.Second, ""},
		{"rpo 0", UpOptions{RPOZero: true}, 0, ""},
		{"rpo 0 wins over a bound", UpOptions{RPOZero: true, RPOBound: time.Minute}, 0, ""},
		{"below 1s", UpOptions{RPOBound: 500 * time.Millisecond}, 0, "--rpo-bound 500ms is below 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.StateDir = t.TempDir()
			got, err := tt.o.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("withDefaults() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.RPOBound != tt.want {
				t.Errorf("withDefaults() RPOBound = %v, %v; want %v, nil", got.RPOBound, err, tt.want)
			}
		})
	}
}
