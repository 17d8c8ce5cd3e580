package ledger

import (
	"regexp"
	"strings"
	"testing"
)

// TestValidRoleName holds validRoleName to the pattern it replaces.
func TestValidRoleName(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	for _, name := range []string{
		"", "payment_app", "_x", "a", "a1", "1a", "A", "app-role", "app role", "é",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "a\n", "x;DROP",
	} {
		if got, want := validRoleName(name), pattern.MatchString(name); got != want {
			t.Errorf("validRoleName(%q) = %v, want %v", name, got, want)
		}
	}
}
