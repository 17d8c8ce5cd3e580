package apikey_test

import (
	"net/http"
	"testing"

	"paydr/internal/apikey"
)

// A test value, not a secret.
const key = "Zk3q9T0aXbV7mNcR2pLw5sYdHf8jUe4gKo1iBt6vQzA0xCyE"

// TestSetPresentedRoundTrip: what a client sets is what the processor reads.
func TestSetPresentedRoundTrip(t *testing.T) {
	h := http.Header{}
	apikey.Set(h, key)
	if got := h.Get("Authorization"); got != "Bearer "+key {
		t.Errorf("Set: Authorization = %q, want Bearer <key>", got)
	}
	if got, ok := apikey.Presented(h); !ok || got != key {
		t.Errorf("Presented(Set(key)) = %q, %v; want the key, true", got, ok)
	}
}

func TestPresented(t *testing.T) {
	tests := []struct {
		name   string
		values []string // Authorization headers
		want   string
		ok     bool
	}{
		{"bearer", []string{"Bearer abc"}, "abc", true},
		{"scheme in any case", []string{"bEaReR abc"}, "abc", true},
		{"spaces around", []string{"  Bearer   abc "}, "abc", true},
		{"none", nil, "", false},
		{"empty", []string{""}, "", false},
		{"scheme only", []string{"Bearer"}, "", false},
		{"scheme and space", []string{"Bearer "}, "", false},
		{"basic", []string{"Basic abc"}, "", false},
		{"no scheme", []string{"abc"}, "", false},
		{"two credentials", []string{"Bearer abc def"}, "", false},
		{"joined headers", []string{"Bearer abc, Bearer abc"}, "", false},
		{"two headers", []string{"Bearer abc", "Bearer abc"}, "", false},
		{"tab in credential", []string{"Bearer ab\tc"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("authorization", v)
			}
			got, ok := apikey.Presented(h)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Presented(%q) = %q, %v; want %q, %v", tt.values, got, ok, tt.want, tt.ok)
			}
		})
	}
}
