package local

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCountManagedInState counts what terraform show's root module lists:
// managed resource instances, not data sources or module resources.
func TestCountManagedInState(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "terraform.tfstate")
	state := `{"version": 4, "resources": [
	  {"mode": "managed", "type": "aws_vpc", "name": "primary", "instances": [{"attributes": {}}]},
	  {"mode": "managed", "type": "aws_subnet", "name": "private", "instances": [{"index_key": 0}, {"index_key": 1}]},
	  {"mode": "data", "type": "aws_partition", "name": "current", "instances": [{}]},
	  {"module": "module.x", "mode": "managed", "type": "aws_vpc", "name": "x", "instances": [{}]}
	]}`
	if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := countManagedInState(path)
	if err != nil || n != 3 {
		t.Errorf("countManagedInState = %d, %v; want 3, nil", n, err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := countManagedInState(path); err == nil {
		t.Error("countManagedInState of a torn file: no error")
	}
}
