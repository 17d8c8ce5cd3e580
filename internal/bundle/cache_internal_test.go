package bundle

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestTrimSharedKeepsTheMostRecentlyUsed: the shared cache keeps its newest
// entries by use and ignores unfinished ones (dot names).
func TestTrimSharedKeepsTheMostRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i, name := range []string{"k0", "k1", "k2", "k3", ".new-x"} {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	// k0 was used last.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(dir, "k0"), now, now); err != nil {
		t.Fatal(err)
	}
	if err := trimShared(dir, 2); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	if want := []string{".new-x", "k0", "k3"}; !slices.Equal(got, want) {
		t.Errorf("after trimming to 2: %v, want %v", got, want)
	}
}
