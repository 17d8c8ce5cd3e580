package payment

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Limits on identifiers. Both use the charset [A-Za-z0-9_-] so they are safe
// in DynamoDB keys, logs and URLs without escaping.
const (
	MaxPaymentIDLen = 64
	MaxSessionIDLen = 128
	// MaxBodyBytes is the largest request body accepted.
	MaxBodyBytes = 16 << 10
)

// Request is a validated payment request. Amount is exact: an integer count
// of minor units of Currency (cents for USD, yen for JPY, fils for KWD).
type Request struct {
	PaymentID   string
	SessionID   string // "" when the request has no session
	AmountMinor int64
	Currency    string
}

// Amount returns the amount as a canonical decimal string ("12.50").
func (r Request) Amount() string {
	mu, _ := MinorUnits(r.Currency)
	return FormatAmount(r.AmountMinor, mu)
}

// Fingerprint is the SHA-256 of the canonical form of the request, used to
// tell a retry (same fingerprint) from a conflicting reuse of a payment_id.
// Equivalent spellings ("12.5", 12.50, "12.50") give the same fingerprint.
func (r Request) Fingerprint() [32]byte {
	return sha256.Sum256([]byte(r.canonical()))
}

func (r Request) canonical() string {
	// Keys sorted; ids are restricted to [A-Za-z0-9_-], so strconv.Quote
	// equals their JSON encoding.
	return `{"amount_minor":` + strconv.FormatInt(r.AmountMinor, 10) +
		`,"currency":` + strconv.Quote(r.Currency) +
		`,"payment_id":` + strconv.Quote(r.PaymentID) +
		`,"session_id":` + strconv.Quote(r.SessionID) + `}`
}

// DecodeRequest parses and validates a JSON payment request:
//
//	{"payment_id": "pay_123", "amount": "12.50", "currency": "USD", "session_id": "s-1"}
//
// payment_id is required, 1..64 characters of [A-Za-z0-9_-]. amount is
// required, a JSON number or string holding a plain positive decimal with no
// more fraction digits than the currency has, at most MaxAmountMinor minor
// units; it is never converted through floating point. currency is required,
// an active upper-case ISO 4217 code. session_id is optional (absent, null or
// ""), 1..128 characters of [A-Za-z0-9_-]. Unknown fields are rejected so a
// misspelt field cannot be silently ignored.
//
// A body that is not exactly one JSON object is a *RequestError with status
// 400; invalid fields give a *RequestError with status 422 listing each one.
func DecodeRequest(body []byte) (Request, error) {
	if len(body) > MaxBodyBytes {
		return Request{}, malformed("body larger than " + strconv.Itoa(MaxBodyBytes) + " bytes")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Request{}, malformed("body must be a JSON object")
		}
		return Request{}, malformed("body is not valid JSON")
	}
	if raw == nil {
		return Request{}, malformed("body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, malformed("body has data after the JSON object")
	}
	return validate(raw)
}

// validate checks the decoded JSON members; numbers must be json.Number.
func validate(raw map[string]any) (Request, error) {
	var req Request
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }

	switch v := raw["payment_id"].(type) {
	case nil:
		add("payment_id", "is required")
	case string:
		if !validID(v, MaxPaymentIDLen) {
			add("payment_id", "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
		}
		req.PaymentID = v
	default:
		add("payment_id", "must be a string")
	}

	// The currency decides the precision of the amount, so read it first
	// but report it after the amount (schema order).
	minorUnits, currencyOK := 4, false // 4: the largest precision, to still check syntax
	var currencyErr *FieldError
	switch v := raw["currency"].(type) {
	case nil:
		currencyErr = &FieldError{"currency", "is required"}
	case string:
		if mu, ok := MinorUnits(v); ok {
			minorUnits, currencyOK = mu, true
			req.Currency = v
		} else {
			currencyErr = &FieldError{"currency", "must be an active ISO 4217 currency code in upper case, such as USD"}
		}
	default:
		currencyErr = &FieldError{"currency", "must be a string"}
	}

	var amountText string
	amountOK := true
	switch v := raw["amount"].(type) {
	case nil:
		add("amount", "is required")
		amountOK = false
	case json.Number:
		amountText = string(v)
	case string:
		amountText = v
	default:
		add("amount", "must be a decimal number or a string holding one")
		amountOK = false
	}
	if amountOK {
		minor, err := ParseAmount(amountText, minorUnits)
		switch {
		case errors.Is(err, errAmountPrecision) && !currencyOK:
			// Precision cannot be judged without a valid currency.
		case err != nil:
			add("amount", err.Error())
		default:
			req.AmountMinor = minor
		}
	}
	if currencyErr != nil {
		errs = append(errs, *currencyErr)
	}

	switch v := raw["session_id"].(type) {
	case nil:
	case string:
		if v != "" && !validID(v, MaxSessionIDLen) {
			add("session_id", "must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
		}
		req.SessionID = v
	default:
		add("session_id", "must be a string")
	}

	var unknown []string
	for k := range raw {
		switch k {
		case "payment_id", "amount", "currency", "session_id":
		default:
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		if len(k) > 64 {
			k = strings.ToValidUTF8(k[:64], "") + "..."
		}
		add(k, "is not a known field")
	}
	if len(errs) > 0 {
		return Request{}, invalid(errs)
	}
	return req, nil
}

func validID(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
