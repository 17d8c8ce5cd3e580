package pg

import "testing"

// SetFreePort makes servers that pick their own port pick it with f until
// the test ends. The test must not run in parallel.
func SetFreePort(t testing.TB, f func() (int, error)) {
	old := freePort
	freePort = f
	t.Cleanup(func() { freePort = old })
}

// PickTries is how many ports a server tries when it picks its own.
const PickTries = pickTries
