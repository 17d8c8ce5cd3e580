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
	// MaxUnknownFieldsListed is how many unknown fields a 422 names; it
	// counts the others.
	MaxUnknownFieldsListed = 5

	// maxFieldNameBytes bounds a field name echoed in an error.
	maxFieldNameBytes = 64
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
// A body that is not exactly one JSON object, or that has a key twice in
// any of its objects (at any depth; "amount" and "\u0061mount" are the
// same key), is a *RequestError with status 400: with duplicate keys the
// body could mean two payments, and parsers disagree on which. Invalid
// fields give a *RequestError with status 422 listing each one, unknown
// fields up to MaxUnknownFieldsListed of them (the message counts the
// rest), so an error stays small whatever the body.
func DecodeRequest(body []byte) (Request, error) {
	if len(body) > MaxBodyBytes {
		return Request{}, malformed("body larger than " + strconv.Itoa(MaxBodyBytes) + " bytes")
	}
	raw, err := decodeObject(body)
	if err != nil {
		return Request{}, err
	}
	return validate(raw)
}

// frame is an object or array decodeObject is reading.
type frame struct {
	key  string          // its key in the parent object; "" for the body
	elem int             // its index in the parent array; -1 in an object
	keys map[string]bool // the keys read so far; nil for an array
	n    int             // the elements read so far, in an array
}

// nested stands for an object or array member value: validate only needs
// to know it is not a string, a number or null.
type nested struct{}

// decodeObject reads body as exactly one JSON object and returns its
// members: strings, json.Numbers, bools, nil, or nested{} for objects and
// arrays. It walks every token, so it sees every key of every object, and
// refuses a key that appears twice in the same object (encoding/json would
// keep the last one). It uses no recursion, so depth costs no stack.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed("body is not valid JSON")
	}
	if tok != json.Delim('{') {
		return nil, malformed("body must be a JSON object")
	}
	members := map[string]any{}
	stack := []frame{{elem: -1, keys: map[string]bool{}}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed("body is not valid JSON")
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:len(stack)-1]
			continue
		}
		child := frame{elem: -1}
		if f.keys != nil {
			key, ok := tok.(string) // the decoder only returns a string here
			if !ok {
				return nil, malformed("body is not valid JSON")
			}
			if f.keys[key] {
				return nil, duplicateKey(stack, key)
			}
			f.keys[key] = true
			child.key = key
			if tok, err = dec.Token(); err != nil {
				return nil, malformed("body is not valid JSON")
			}
		} else {
			child.elem = f.n
			f.n++
		}
		d, isDelim := tok.(json.Delim)
		if len(stack) == 1 {
			if isDelim {
				members[child.key] = nested{}
			} else {
				members[child.key] = tok
			}
		}
		if isDelim {
			if d == '{' {
				child.keys = map[string]bool{}
			}
			stack = append(stack, child)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("body has data after the JSON object")
	}
	return members, nil
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
	for _, k := range unknown[:min(len(unknown), MaxUnknownFieldsListed)] {
		add(Sanitize(k, maxFieldNameBytes), "is not a known field")
	}
	if len(errs) > 0 {
		err := invalid(errs)
		if more := len(unknown) - MaxUnknownFieldsListed; more > 0 {
			err.Message += "; and " + strconv.Itoa(more) + " more unknown fields"
		}
		return Request{}, err
	}
	return req, nil
}

// duplicateKey is the error for key found twice in the innermost object
// of stack. It names the key by its path from the body ("meta.items[2].id"),
// each step cut to maxFieldNameBytes/2 and the middle of a deep path left
// out, so the name stays short whatever the body.
func duplicateKey(stack []frame, key string) *RequestError {
	steps := make([]string, 0, len(stack))
	for _, f := range stack[1:] {
		if f.elem >= 0 {
			steps = append(steps, "["+strconv.Itoa(f.elem)+"]")
		} else {
			steps = append(steps, Sanitize(f.key, maxFieldNameBytes/2))
		}
	}
	steps = append(steps, Sanitize(key, maxFieldNameBytes/2))
	path := joinPath(steps)
	if len(steps) > 4 {
		path = joinPath(steps[:2]) + "..." + joinPath(steps[len(steps)-2:])
	}
	return &RequestError{
		Code:    CodeMalformed,
		Message: `malformed request: key "` + path + `" appears more than once; send each key once`,
		Fields:  []FieldError{{Field: path, Message: "appears more than once"}},
	}
}

// joinPath joins the steps of a path to a JSON value: keys with ".",
// array indexes ("[2]") without.
func joinPath(steps []string) string {
	var b strings.Builder
	for i, s := range steps {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
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
