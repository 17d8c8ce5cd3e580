package drill

import (
	"sort"
	"time"
)

// Answer is what a client learned from one payment request.
type Answer string

// Answers.
const (
	// Acked is a 201 from the processor: the payment is committed.
	Acked Answer = "acked"
	// Rejected is a definite refusal from the processor (4xx, 503): the
	// payment was not committed.
	Rejected Answer = "rejected"
	// Indeterminate is no definite answer: the request timed out, the
	// connection failed, the router answered 502/504 because the
	// processor died mid-request, or the processor answered 504
	// outcome_unknown (its write was sent and the answer lost) or 500.
	// The payment may or may not be committed.
	Indeterminate Answer = "indeterminate"
)

// Attempt is one payment request a drill sent.
type Attempt struct {
	PaymentID   string    `json:"payment_id"`
	AmountMinor int64     `json:"amount_minor"`
	Sent        time.Time `json:"sent"`
	Done        time.Time `json:"done"`
	Status      int       `json:"status,omitempty"`
	Answer      Answer    `json:"answer"`
	// Target is the region that served it (router header), if any.
	Target string `json:"target,omitempty"`
	Error  string `json:"error,omitempty"`
	// CreatedAt is the created_at of an acknowledged payment's body: the
	// processor's clock just before its ledger insert, so within the
	// insert's own latency of the commit, where Done also counts the
	// answer's way back (the cache write, the event, the network).
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// committed returns the best time known for a's commit: CreatedAt when the
// answer carried it, else Done.
func (a Attempt) committed() time.Time {
	if !a.CreatedAt.IsZero() {
		return a.CreatedAt
	}
	return a.Done
}

// LedgerRow is one payment found in the ledger.
type LedgerRow struct {
	PaymentID   string `json:"payment_id"`
	AmountMinor int64  `json:"amount_minor"`
}

// Class is a payment's fate, Jepsen style.
type Class string

// Classes.
const (
	// ClassOK is acknowledged and present once with its amount.
	ClassOK Class = "ok"
	// ClassLost is acknowledged and missing.
	ClassLost Class = "lost"
	// ClassDuplicated is present more than once.
	ClassDuplicated Class = "duplicated"
	// ClassIndeterminate is present without an acknowledgement, for a
	// request with no definite answer: allowed.
	ClassIndeterminate Class = "indeterminate"
	// ClassUnexpected is present although the processor refused it, or
	// present and never sent, or present with another amount: never
	// allowed.
	ClassUnexpected Class = "unexpected"
	// ClassFailed is not acknowledged and absent: a client error, no harm.
	ClassFailed Class = "failed"
)

// Classification is the fate of every payment a drill sent, checked
// against the new writer's ledger.
type Classification struct {
	Counts map[Class]int `json:"counts"`
	// Lost, Duplicated and Unexpected list the payment ids concerned.
	Lost       []string `json:"lost,omitempty"`
	Duplicated []string `json:"duplicated,omitempty"`
	Unexpected []string `json:"unexpected,omitempty"`
	// AckedTotal is the sum of acknowledged amounts; LedgerTotal of the
	// amounts in the ledger; IndeterminateTotal of indeterminate payments
	// found in the ledger; LostTotal of acknowledged payments missing.
	AckedTotal         int64 `json:"acked_total_minor"`
	LedgerTotal        int64 `json:"ledger_total_minor"`
	IndeterminateTotal int64 `json:"indeterminate_total_minor"`
	LostTotal          int64 `json:"lost_total_minor"`
	// Conserved is true when the ledger holds exactly what clients were
	// told, minus what was lost, plus indeterminate payments:
	// LedgerTotal == AckedTotal - LostTotal + IndeterminateTotal and no
	// payment is duplicated or unexpected. Money neither appeared nor
	// changed.
	Conserved bool `json:"conserved"`
	// Exact is LedgerTotal == AckedTotal: the ledger total equals the sum
	// of acknowledged amounts.
	Exact bool `json:"exact"`
}

// Classify checks attempts against ledger (the rows of the drill's
// payments in the new writer's ledger; a payment id may appear more than
// once in a ledger without a unique key).
func Classify(attempts []Attempt, ledger []LedgerRow) Classification {
	c := Classification{Counts: map[Class]int{}}
	rows := map[string][]LedgerRow{}
	for _, r := range ledger {
		rows[r.PaymentID] = append(rows[r.PaymentID], r)
		c.LedgerTotal += r.AmountMinor
	}
	sent := map[string]bool{}
	for _, a := range attempts {
		sent[a.PaymentID] = true
		found := rows[a.PaymentID]
		if a.Answer == Acked {
			c.AckedTotal += a.AmountMinor
		}
		var class Class
		switch {
		case len(found) > 1:
			class = ClassDuplicated
			c.Duplicated = append(c.Duplicated, a.PaymentID)
		case len(found) == 1 && found[0].AmountMinor != a.AmountMinor:
			class = ClassUnexpected
			c.Unexpected = append(c.Unexpected, a.PaymentID)
		case len(found) == 1 && a.Answer == Acked:
			class = ClassOK
		case len(found) == 1 && a.Answer == Indeterminate:
			class = ClassIndeterminate
			c.IndeterminateTotal += a.AmountMinor
		case len(found) == 1:
			class = ClassUnexpected
			c.Unexpected = append(c.Unexpected, a.PaymentID)
		case a.Answer == Acked:
			class = ClassLost
			c.Lost = append(c.Lost, a.PaymentID)
			c.LostTotal += a.AmountMinor
		default:
			class = ClassFailed
		}
		c.Counts[class]++
	}
	var phantom []string
	for id := range rows {
		if !sent[id] {
			phantom = append(phantom, id)
		}
	}
	sort.Strings(phantom)
	for _, id := range phantom {
		c.Counts[ClassUnexpected]++
		c.Unexpected = append(c.Unexpected, id)
	}
	c.Conserved = len(c.Duplicated) == 0 && len(c.Unexpected) == 0 &&
		c.LedgerTotal == c.AckedTotal-c.LostTotal+c.IndeterminateTotal
	c.Exact = c.LedgerTotal == c.AckedTotal
	return c
}
