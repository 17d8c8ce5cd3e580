package payment

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		want       Request
		wantCode   string       // "": success
		wantFields []FieldError // for 422
	}{
		{
			name: "string amount",
			body: `{"payment_id":"pay_1","amount":"12.50","currency":"USD","session_id":"s-1"}`,
			want: Request{PaymentID: "pay_1", SessionID: "s-1", AmountMinor: 1250, Currency: "USD"},
		},
		{
			name: "number amount is exact",
			body: `{"payment_id":"pay_1","amount":0.29,"currency":"USD"}`,
			want: Request{PaymentID: "pay_1", AmountMinor: 29, Currency: "USD"},
		},
		{
			name: "number above max", body: `{"payment_id":"p","amount":9007199254740993,"currency":"JPY"}`,
			wantCode: CodeInvalid, wantFields: []FieldError{{"amount", "exceeds the maximum accepted amount"}},
		},
		{
			name: "number that float64 would round down",
			body: `{"payment_id":"p","amount":1.15,"currency":"EUR"}`,
			want: Request{PaymentID: "p", AmountMinor: 115, Currency: "EUR"},
		},
		{
			name: "near max jpy stays exact",
			body: `{"payment_id":"p","amount":999999999999999,"currency":"JPY"}`,
			want: Request{PaymentID: "p", AmountMinor: 999999999999999, Currency: "JPY"},
		},
		{
			name: "kwd three digits",
			body: `{"payment_id":"p","amount":"1.005","currency":"KWD"}`,
			want: Request{PaymentID: "p", AmountMinor: 1005, Currency: "KWD"},
		},
		{
			name: "null and empty session are none",
			body: `{"payment_id":"p","amount":1,"currency":"EUR","session_id":null}`,
			want: Request{PaymentID: "p", AmountMinor: 100, Currency: "EUR"},
		},
		{
			name: "empty session", body: `{"payment_id":"p","amount":1,"currency":"EUR","session_id":""}`,
			want: Request{PaymentID: "p", AmountMinor: 100, Currency: "EUR"},
		},
		{name: "not json", body: `{"payment_id":`, wantCode: CodeMalformed},
		{name: "array", body: `[1,2]`, wantCode: CodeMalformed},
		{name: "null", body: `null`, wantCode: CodeMalformed},
		{name: "string", body: `"x"`, wantCode: CodeMalformed},
		{name: "empty body", body: ``, wantCode: CodeMalformed},
		{name: "trailing data", body: `{"payment_id":"p","amount":1,"currency":"USD"} {}`, wantCode: CodeMalformed},
		{name: "too large", body: `{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, wantCode: CodeMalformed},
		{
			name: "missing everything", body: `{}`, wantCode: CodeInvalid,
			wantFields: []FieldError{
				{"payment_id", "is required"},
				{"amount", "is required"},
				{"currency", "is required"},
			},
		},
		{
			name: "bad payment id charset", body: `{"payment_id":"a b","amount":1,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"payment_id", "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'"}},
		},
		{
			name: "payment id too long", body: `{"payment_id":"` + strings.Repeat("a", 65) + `","amount":1,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"payment_id", "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'"}},
		},
		{
			name: "payment id number", body: `{"payment_id":7,"amount":1,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"payment_id", "must be a string"}},
		},
		{
			name: "zero amount", body: `{"payment_id":"p","amount":0,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"amount", "must be greater than zero"}},
		},
		{
			name: "negative amount", body: `{"payment_id":"p","amount":-1.5,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"amount", "must be greater than zero"}},
		},
		{
			name: "too precise for jpy", body: `{"payment_id":"p","amount":"1.5","currency":"JPY"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"amount", "has more fraction digits than the currency allows"}},
		},
		{
			name: "exponent", body: `{"payment_id":"p","amount":1e3,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"amount", errAmountSyntax.Error()}},
		},
		{
			name: "bool amount", body: `{"payment_id":"p","amount":true,"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"amount", "must be a decimal number or a string holding one"}},
		},
		{
			name: "lower-case currency", body: `{"payment_id":"p","amount":1,"currency":"usd"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"currency", "must be an active ISO 4217 currency code in upper case, such as USD"}},
		},
		{
			name: "unknown currency skips precision check", body: `{"payment_id":"p","amount":"1.23456","currency":"XXX"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"currency", "must be an active ISO 4217 currency code in upper case, such as USD"}},
		},
		{
			name: "bad session", body: `{"payment_id":"p","amount":1,"currency":"USD","session_id":"a/b"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"session_id", "must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'"}},
		},
		{
			name: "unknown fields sorted", body: `{"payment_id":"p","amount":1,"currency":"USD","zeta":1,"ammount":2}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"ammount", "is not a known field"}, {"zeta", "is not a known field"}},
		},
		{
			name: "unknown fields bounded", wantCode: CodeInvalid,
			body: `{"payment_id":"p","amount":1,"currency":"USD","f9":0,"f8":0,"f7":0,"f6":0,"f5":0,"f4":0,"f3":0,"f2":0,"f1":0,"f0":0}`,
			wantFields: []FieldError{
				{"f0", "is not a known field"}, {"f1", "is not a known field"}, {"f2", "is not a known field"},
				{"f3", "is not a known field"}, {"f4", "is not a known field"},
			},
		},
		{
			name: "unknown field name made printable and cut", wantCode: CodeInvalid,
			body:       `{"payment_id":"p","amount":1,"currency":"USD","a\u0000<\"` + strings.Repeat("z", 100) + `":0}`,
			wantFields: []FieldError{{"a???" + strings.Repeat("z", 60) + "...", "is not a known field"}},
		},
		{
			name: "duplicate key", body: `{"payment_id":"p","amount":"1.00","amount":"9999.00","currency":"USD"}`, wantCode: CodeMalformed,
			wantFields: []FieldError{{"amount", "appears more than once"}},
		},
		{
			name: "duplicate key spelt with an escape", body: `{"payment_id":"p","\u0061mount":"1.00","amount":"9999.00","currency":"USD"}`, wantCode: CodeMalformed,
			wantFields: []FieldError{{"amount", "appears more than once"}},
		},
		{
			name: "duplicate null key", body: `{"payment_id":"p","amount":"1","currency":"USD","session_id":null,"session_id":"s"}`, wantCode: CodeMalformed,
			wantFields: []FieldError{{"session_id", "appears more than once"}},
		},
		{
			name: "duplicate key nested", body: `{"payment_id":"p","amount":1,"currency":"USD","x":[1,{"y":{"z":1,"z":2}}]}`, wantCode: CodeMalformed,
			wantFields: []FieldError{{"x[1].y.z", "appears more than once"}},
		},
		{
			name: "duplicate key deep path shortened", body: `{"a":{"b":{"c":{"d":{"e":{"f":1,"f":2}}}}}}`, wantCode: CodeMalformed,
			wantFields: []FieldError{{"a.b...e.f", "appears more than once"}},
		},
		{
			name: "same key in sibling objects is fine", body: `{"payment_id":"p","amount":1,"currency":"USD","x":{"k":1},"y":[{"k":1},{"k":2}]}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"x", "is not a known field"}, {"y", "is not a known field"}},
		},
		{
			name: "nested value for a known field", body: `{"payment_id":{"id":"p"},"amount":[1],"currency":"USD"}`, wantCode: CodeInvalid,
			wantFields: []FieldError{{"payment_id", "must be a string"}, {"amount", "must be a decimal number or a string holding one"}},
		},
		{name: "object not closed", body: `{"payment_id":"p","amount":1,"currency":"USD"`, wantCode: CodeMalformed},
		{name: "trailing comma", body: `{"payment_id":"p","amount":1,"currency":"USD",}`, wantCode: CodeMalformed},
		{name: "missing colon", body: `{"payment_id" "p"}`, wantCode: CodeMalformed},
		{name: "nested not closed", body: `{"payment_id":"p","x":[{"a":1]}`, wantCode: CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tt.body))
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("DecodeRequest(%s) error = %v", tt.body, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("DecodeRequest(%s) mismatch (-want +got):\n%s", tt.body, diff)
				}
				return
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("DecodeRequest(%s) error = %v, want *RequestError", tt.body, err)
			}
			if re.Code != tt.wantCode {
				t.Errorf("DecodeRequest(%s) code = %s, want %s", tt.body, re.Code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantFields, re.Fields); diff != "" {
				t.Errorf("DecodeRequest(%s) fields mismatch (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

// TestDecodeRequestErrorsBounded: however many unknown fields a body
// holds, its error lists a few and counts the rest.
func TestDecodeRequestErrorsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"payment_id":"a b","amount":"x","currency":"usd","session_id":"/"`)
	for i := range 1000 {
		fmt.Fprintf(&b, `,"kkkkkk%04d":0`, i)
	}
	b.WriteString("}")
	_, err := DecodeRequest([]byte(b.String()))
	var re *RequestError
	if !errors.As(err, &re) || re.Code != CodeInvalid {
		t.Fatalf("DecodeRequest(1000 unknown fields) error = %v, want a 422 *RequestError", err)
	}
	if got, want := len(re.Fields), 4+5; got != want {
		t.Errorf("DecodeRequest(1000 unknown fields) lists %d fields, want %d (4 known, 5 unknown)", got, want)
	}
	if !strings.HasSuffix(re.Message, "; and 995 more unknown fields") {
		t.Errorf("DecodeRequest(1000 unknown fields) message = %q, want it to end with the count of the unlisted", re.Message)
	}
	if len(re.Message) > 1500 {
		t.Errorf("DecodeRequest(1000 unknown fields) message is %d bytes, want at most 1500", len(re.Message))
	}
}

func TestFingerprintCanonical(t *testing.T) {
	bodies := []string{
		`{"payment_id":"p","amount":"12.5","currency":"USD"}`,
		`{"currency":"USD","amount":12.50,"payment_id":"p"}`,
		`{"payment_id":"p","amount":"012.50","currency":"USD","session_id":null}`,
	}
	var first [32]byte
	for i, b := range bodies {
		r, err := DecodeRequest([]byte(b))
		if err != nil {
			t.Fatalf("DecodeRequest(%s) error = %v", b, err)
		}
		if i == 0 {
			first = r.Fingerprint()
		} else if r.Fingerprint() != first {
			t.Errorf("Fingerprint(%s) differs from Fingerprint(%s)", b, bodies[0])
		}
	}
	other, _ := DecodeRequest([]byte(`{"payment_id":"p","amount":"12.51","currency":"USD"}`))
	if other.Fingerprint() == first {
		t.Errorf("different amounts share a fingerprint")
	}
}

// FuzzDecodeRequest checks that any accepted body yields a valid request that
// survives re-encoding, and that rejections are always *RequestError.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"payment_id":"pay_1","amount":"12.50","currency":"USD","session_id":"s-1"}`,
		`{"payment_id":"p","amount":0.29,"currency":"USD"}`,
		`{"payment_id":"p","amount":500,"currency":"JPY"}`,
		`{"payment_id":"p","amount":"1.005","currency":"KWD"}`,
		`{"payment_id":"p","amount":1e3,"currency":"USD"}`,
		`{"payment_id":"p","amount":-1,"currency":"USD"}`,
		`{"payment_id":"p","amount":"1","currency":"usd"}`,
		`[]`, `null`, `{"payment_id":`, `{"a":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || (re.Code != CodeMalformed && re.Code != CodeInvalid) {
				t.Fatalf("DecodeRequest(%q) error = %#v, want a 400 or 422 *RequestError", body, err)
			}
			if re.Code == CodeInvalid && len(re.Fields) == 0 {
				t.Fatalf("DecodeRequest(%q) 422 without a field", body)
			}
			return
		}
		mu, ok := MinorUnits(req.Currency)
		if !ok || req.AmountMinor <= 0 || req.AmountMinor > MaxAmountMinor || !validID(req.PaymentID, MaxPaymentIDLen) {
			t.Fatalf("DecodeRequest(%q) accepted invalid request %+v", body, req)
		}
		again, err := json.Marshal(map[string]string{
			"payment_id": req.PaymentID, "session_id": req.SessionID,
			"amount": FormatAmount(req.AmountMinor, mu), "currency": req.Currency,
		})
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeRequest(again)
		if err != nil {
			t.Fatalf("re-decoding %s error = %v", again, err)
		}
		if diff := cmp.Diff(req, back); diff != "" {
			t.Fatalf("re-decoded request mismatch (-first +again):\n%s", diff)
		}
	})
}
