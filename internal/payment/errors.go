package payment

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error codes carried in the "error" member of an error response body. A
// transport maps each to its own status (the processor: 400, 422, 409, 415,
// 503, 504, 500, 401, 404 and 405).
const (
	CodeMalformed = "malformed_request"    // the body is not a JSON object, or has a key twice
	CodeInvalid   = "invalid_field"        // a field has a bad value
	CodeConflict  = "idempotency_conflict" // the payment_id was used for another request
	// CodeUnsupportedMediaType: the body is not declared as JSON
	// (Content-Type other than application/json, or none), or is encoded
	// (Content-Encoding).
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeUnavailable          = "unavailable" // this region cannot take payments now; this request recorded nothing
	// CodeOutcomeUnknown: the payment may or may not have been recorded
	// (the database went away, or the deadline passed, after the write was
	// sent). A retry with the same payment_id is safe and settles it.
	CodeOutcomeUnknown = "outcome_unknown"
	CodeInternal       = "internal_error"
	CodeNotFound       = "not_found"
	CodeMethod         = "method_not_allowed"
	// CodeUnauthorized: the request does not carry the API key (missing,
	// malformed, or not the current key). It is checked before the body is
	// read, so such a request records nothing.
	CodeUnauthorized = "unauthorized"
)

// FieldError names one invalid field of a request and says what is wrong.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// RequestError is an error a caller can fix: a body that is not a JSON
// object or has a key twice (CodeMalformed), invalid fields (CodeInvalid),
// an idempotency conflict (CodeConflict), a body not declared as JSON
// (CodeUnsupportedMediaType). Its message is safe to return to callers
// and bounded in size: it never echoes more than a short, sanitized
// (Sanitize) field name of what the caller sent, nor anything stored.
type RequestError struct {
	Code    string
	Message string
	// Fields lists the invalid fields in the order of the request schema
	// (unknown ones after, at most MaxUnknownFieldsListed of them), the
	// duplicated key, or payment_id for a conflict. A Field may name a
	// request header (Idempotency-Key).
	Fields []FieldError
}

// Error returns the caller-facing message.
func (e *RequestError) Error() string { return e.Message }

// Field returns the first offending field name, or "" when none applies.
func (e *RequestError) Field() string {
	if len(e.Fields) == 0 {
		return ""
	}
	return e.Fields[0].Field
}

func malformed(msg string) *RequestError {
	return &RequestError{Code: CodeMalformed, Message: "malformed request: " + msg}
}

func invalid(fields []FieldError) *RequestError {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return &RequestError{
		Code:    CodeInvalid,
		Message: "invalid request: " + strings.Join(parts, "; "),
		Fields:  fields,
	}
}

// ErrUnavailable is wrapped by store errors meaning "this region cannot
// record payments right now, and this request recorded nothing" (an
// earlier request with the same payment_id may have): the
// database refused the write (read-only after a failover or fencing, in
// recovery) or could not be reached before the write was sent. The
// processor answers 503 so clients retry, possibly in the other region.
var ErrUnavailable = errors.New("payment store unavailable")

// ErrOutcomeUnknown is wrapped by store errors meaning "the write was sent
// and its outcome is unknown": the connection was lost, the deadline
// passed or the server ended the session after the INSERT left, so the
// payment may be committed (with synchronous replication, a commit whose
// wait for the standby is cancelled is committed locally). The processor
// answers 504; a retry with the same payment_id settles it.
var ErrOutcomeUnknown = errors.New("payment outcome unknown")

// MaxErrorBodyBytes bounds the JSON encoding of an ErrorBody. The bodies
// ErrorResponse builds stay well under it whatever the request; a
// transport may enforce it (the processor does).
const MaxErrorBodyBytes = 4 << 10

// Sanitize returns s made safe to echo in an error body or a log line, at
// most maxBytes bytes long plus "..." when it had to be cut: every
// character that is not printable, not valid UTF-8 (or U+FFFD), or one of
// " \ < > &, becomes '?', so its JSON encoding is no longer than itself.
func Sanitize(s string, maxBytes int) string {
	var b strings.Builder
	for _, r := range s {
		size := utf8.RuneLen(r)
		if r == utf8.RuneError || !unicode.IsPrint(r) || strings.ContainsRune(`"\<>&`, r) {
			r, size = '?', 1
		}
		if b.Len()+size > maxBytes {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrorBody is the JSON body of every error response. Field names the first
// offending field, Fields all of them.
type ErrorBody struct {
	Error   string       `json:"error"`
	Message string       `json:"message"`
	Field   string       `json:"field,omitempty"`
	Fields  []FieldError `json:"fields,omitempty"`
}

// ErrorResponse maps err to a body safe to show callers, its Error member
// the code: a *RequestError keeps its message; ErrOutcomeUnknown becomes a
// generic CodeOutcomeUnknown (it wins over ErrUnavailable: "not recorded"
// is said only when certain); ErrUnavailable a generic CodeUnavailable;
// anything else is a generic CodeInternal without the internal error text.
func ErrorResponse(err error) ErrorBody {
	var re *RequestError
	switch {
	case errors.As(err, &re):
		return ErrorBody{Error: re.Code, Message: re.Message, Field: re.Field(), Fields: re.Fields}
	case errors.Is(err, ErrOutcomeUnknown):
		return ErrorBody{Error: CodeOutcomeUnknown, Message: "the payment may or may not have been recorded; retrying with the same payment_id is safe and returns the payment if it was"}
	case errors.Is(err, ErrUnavailable):
		return ErrorBody{Error: CodeUnavailable, Message: "payments are temporarily unavailable in this region and this request recorded nothing; retry with the same payment_id"}
	default:
		return ErrorBody{Error: CodeInternal, Message: "internal error; retry with the same payment_id"}
	}
}
