package payment

import (
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"testing"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		minor int
		want  int64
		err   error
	}{
		{"usd whole", "12", 2, 1200, nil},
		{"usd one fraction digit", "12.5", 2, 1250, nil},
		{"usd two fraction digits", "12.50", 2, 1250, nil},
		{"usd smallest", "0.01", 2, 1, nil},
		{"leading zeros", "007.10", 2, 710, nil},
		{"jpy whole", "500", 0, 500, nil},
		{"jpy fraction rejected", "500.5", 0, 0, errAmountPrecision},
		{"jpy trailing zero fraction rejected", "500.0", 0, 0, errAmountPrecision},
		{"kwd three digits", "1.234", 3, 1234, nil},
		{"kwd four digits rejected", "1.2345", 3, 0, errAmountPrecision},
		{"usd trailing zeros beyond precision", "1.000", 2, 0, errAmountPrecision},
		{"clf four digits", "0.0001", 4, 1, nil},
		{"zero", "0", 2, 0, errAmountNotPos},
		{"zero with fraction", "0.00", 2, 0, errAmountNotPos},
		{"negative", "-5", 2, 0, errAmountNotPos},
		{"negative zero", "-0", 2, 0, errAmountNotPos},
		{"max", "10000000000000.00", 2, MaxAmountMinor, nil},
		{"above max", "10000000000000.01", 2, 0, errAmountTooLarge},
		{"int64 overflow", "99999999999999999999", 0, 0, errAmountTooLarge},
		{"huge text", "1" + string(make([]byte, 100)), 2, 0, errAmountTooLarge},
		{"leading zeros do not overflow", "0000000000000000000000001", 0, 1, nil},
		{"exponent", "1e2", 2, 0, errAmountSyntax},
		{"plus sign", "+5", 2, 0, errAmountSyntax},
		{"empty", "", 2, 0, errAmountSyntax},
		{"point only", ".", 2, 0, errAmountSyntax},
		{"no integer part", ".5", 2, 0, errAmountSyntax},
		{"no fraction part", "5.", 2, 0, errAmountSyntax},
		{"space", " 5", 2, 0, errAmountSyntax},
		{"comma", "1,000", 2, 0, errAmountSyntax},
		{"two points", "1.2.3", 2, 0, errAmountSyntax},
		{"negative garbage", "-x", 2, 0, errAmountSyntax},
		{"unicode digit", "١٢", 2, 0, errAmountSyntax},
		{"nan", "NaN", 2, 0, errAmountSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAmount(tt.in, tt.minor)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseAmount(%q, %d) error = %v, want %v", tt.in, tt.minor, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("ParseAmount(%q, %d) = %d, want %d", tt.in, tt.minor, got, tt.want)
			}
		})
	}
}

func TestFormatAmount(t *testing.T) {
	tests := []struct {
		minor int64
		units int
		want  string
	}{
		{1250, 2, "12.50"},
		{1, 2, "0.01"},
		{10, 2, "0.10"},
		{500, 0, "500"},
		{1234, 3, "1.234"},
		{5, 3, "0.005"},
		{1, 4, "0.0001"},
		{-1250, 2, "-12.50"},
		{MaxAmountMinor, 2, "10000000000000.00"},
	}
	for _, tt := range tests {
		if got := FormatAmount(tt.minor, tt.units); got != tt.want {
			t.Errorf("FormatAmount(%d, %d) = %q, want %q", tt.minor, tt.units, got, tt.want)
		}
	}
}

func TestMinorUnits(t *testing.T) {
	want := map[string]int{
		"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "XOF": 0,
		"USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "INR": 2,
		"BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3,
		"CLF": 4, "UYW": 4,
	}
	for code, units := range want {
		got, ok := MinorUnits(code)
		if !ok || got != units {
			t.Errorf("MinorUnits(%q) = %d, %v; want %d, true", code, got, ok, units)
		}
	}
	for _, code := range []string{"usd", "XAU", "XTS", "HRK", "ZWL", "VEF", "", "US"} {
		if _, ok := MinorUnits(code); ok {
			t.Errorf("MinorUnits(%q) ok = true, want false", code)
		}
	}
	if n := Currencies(); n < 150 {
		t.Errorf("Currencies() = %d, want at least 150 active codes", n)
	}
	upper := regexp.MustCompile(`^[A-Z]{3}$`)
	for code, units := range currencies {
		if !upper.MatchString(code) || units < 0 || units > 4 {
			t.Errorf("currencies[%q] = %d: malformed entry", code, units)
		}
	}
}

// FuzzParseAmount checks ParseAmount against an exact big.Rat reference.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.50", "0.01", "1e2", "-1", "10000000000000.00", "0", "007", "1.2345", ".5"} {
		f.Add(s, uint8(2))
	}
	f.Add("500", uint8(0))
	f.Add("1.234", uint8(3))
	plain := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	f.Fuzz(func(t *testing.T, s string, units uint8) {
		mu := int(units % 5)
		got, err := ParseAmount(s, mu)
		if err != nil {
			if got != 0 {
				t.Fatalf("ParseAmount(%q, %d) = %d with error %v, want 0", s, mu, got, err)
			}
			if plain.MatchString(s) && len(s) <= maxAmountText {
				// A plain decimal may only fail for a value reason.
				r, _ := new(big.Rat).SetString(s)
				scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(mu)), nil)))
				_, frac, _ := cutPoint(s)
				switch {
				case len(frac) > mu:
					if !errors.Is(err, errAmountPrecision) {
						t.Fatalf("ParseAmount(%q, %d) error = %v, want precision error", s, mu, err)
					}
				case r.Sign() == 0:
					if !errors.Is(err, errAmountNotPos) {
						t.Fatalf("ParseAmount(%q, %d) error = %v, want not positive", s, mu, err)
					}
				case scaled.Cmp(new(big.Rat).SetInt64(MaxAmountMinor)) <= 0:
					t.Fatalf("ParseAmount(%q, %d) error = %v for a valid amount", s, mu, err)
				}
			}
			return
		}
		if got <= 0 || got > MaxAmountMinor {
			t.Fatalf("ParseAmount(%q, %d) = %d, outside (0, max]", s, mu, got)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || !plain.MatchString(s) {
			t.Fatalf("ParseAmount(%q, %d) accepted non-plain decimal", s, mu)
		}
		want := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(mu)), nil)))
		if !want.IsInt() || want.Num().String() != strconv.FormatInt(got, 10) {
			t.Fatalf("ParseAmount(%q, %d) = %d, want %s", s, mu, got, want.RatString())
		}
		back, err := ParseAmount(FormatAmount(got, mu), mu)
		if err != nil || back != got {
			t.Fatalf("round trip of %d via %q = %d, %v", got, FormatAmount(got, mu), back, err)
		}
	})
}

func cutPoint(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
