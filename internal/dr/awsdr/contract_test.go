package awsdr

import (
	"testing"

	"paydr/internal/dr/drtest"
)

// TestBackendContract runs the contract every DR backend keeps against the
// AWS backend on the emulator (moto, with the global-cluster calls it lacks
// answered by fakeRDS, and stand-ins for each region's API endpoint and
// the failover name's DNS).
func TestBackendContract(t *testing.T) {
	w := setUp(t)
	b, _ := connect(t, w)
	drtest.Contract(t, b)
}
