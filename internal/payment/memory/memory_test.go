package memory_test

import (
	"testing"

	"paydr/internal/payment/memory"
	"paydr/internal/payment/paymenttest"
)

func TestLedgerContract(t *testing.T) {
	paymenttest.TestLedger(t, func(*testing.T) paymenttest.InspectableLedger { return memory.NewLedger() })
}

func TestSessionsContract(t *testing.T) {
	paymenttest.TestSessions(t, func(*testing.T) paymenttest.InspectableSessions { return memory.NewSessions() })
}
