package pg_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paydr/internal/local/pg"
)

// A state directory PostgreSQL's user cannot reach is reported before
// anything starts (paydr up's prerequisites), naming the directory and the
// fix; a reachable one, existing or still to be made, passes.
func TestCheckReachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user; as any other user the data directory is its own")
	}
	base := filepath.Join(os.TempDir(), "paydr-reachable-"+strings.ReplaceAll(t.Name(), "/", "-"))
	os.RemoveAll(base)
	t.Cleanup(func() { os.RemoveAll(base) })
	closed := filepath.Join(base, "closed")
	open := filepath.Join(base, "open")
	for d, mode := range map[string]os.FileMode{base: 0o755, closed: 0o700, open: 0o755} {
		if err := os.MkdirAll(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		dir     string
		wantErr string
	}{
		{filepath.Join(open, "state"), ""},
		{filepath.Join(open, "state", "not", "yet"), ""},
		{open, ""},
		{filepath.Join(closed, "state"), closed + " (mode -rwx------) is not searchable"},
		{closed, closed + " (mode -rwx------) is not searchable"},
	}
	for _, tt := range tests {
		err := pg.CheckReachable(tt.dir)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckReachable(%s) = %v, want nil", tt.dir, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "chmod o+x")):
			t.Errorf("CheckReachable(%s) = %v, want an error with %q and the fix", tt.dir, err, tt.wantErr)
		}
	}
}
