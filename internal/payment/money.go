package payment

import (
	"errors"
	"strconv"
	"strings"
)

// MaxAmountMinor is the largest amount accepted, in minor units of the
// payment's currency (10^15: ten trillion US dollars, a quadrillion yen).
// Anything above it is an input error, not a payment; the bound also keeps
// sums of many payments far from int64 overflow.
const MaxAmountMinor int64 = 1_000_000_000_000_000

// maxAmountText bounds the length of an amount's text before any parsing so
// a megabyte of digits costs nothing.
const maxAmountText = 40

// Amount parsing reasons; they end up in a FieldError's message.
var (
	errAmountSyntax    = errors.New("must be a plain decimal such as \"12.50\" (digits, optional point and fraction; no sign, exponent or spaces)")
	errAmountNotPos    = errors.New("must be greater than zero")
	errAmountTooLarge  = errors.New("exceeds the maximum accepted amount")
	errAmountPrecision = errors.New("has more fraction digits than the currency allows")
)

// ParseAmount converts the decimal text s (as written in a JSON number or
// string) into an exact count of minor units for a currency with minorUnits
// fraction digits: ParseAmount("12.5", 2) = 1250. It accepts only
// [0-9]+(\.[0-9]+)? (a leading '-' is reported as not positive) and never
// goes through floating point. Zero, more fraction digits than minorUnits
// (even trailing zeros: "1.000" for USD) and amounts above MaxAmountMinor are
// errors.
func ParseAmount(s string, minorUnits int) (int64, error) {
	if len(s) > maxAmountText {
		return 0, errAmountTooLarge
	}
	negative := false
	if strings.HasPrefix(s, "-") {
		negative = true
		s = s[1:]
	}
	intPart, frac, hasPoint := strings.Cut(s, ".")
	if intPart == "" || (hasPoint && frac == "") || !allDigits(intPart) || !allDigits(frac) {
		return 0, errAmountSyntax
	}
	if negative {
		return 0, errAmountNotPos
	}
	if len(frac) > minorUnits {
		return 0, errAmountPrecision
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 19 {
		return 0, errAmountTooLarge
	}
	digits := intPart + frac + strings.Repeat("0", minorUnits-len(frac))
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, errAmountNotPos
	}
	if len(digits) > 19 {
		return 0, errAmountTooLarge
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v > MaxAmountMinor {
		return 0, errAmountTooLarge
	}
	return v, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatAmount renders minor units as a decimal string with exactly
// minorUnits fraction digits: FormatAmount(1250, 2) = "12.50",
// FormatAmount(500, 0) = "500". It is the inverse of ParseAmount for the
// canonical form.
func FormatAmount(minor int64, minorUnits int) string {
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if minorUnits > 0 {
		if len(s) <= minorUnits {
			s = strings.Repeat("0", minorUnits-len(s)+1) + s
		}
		s = s[:len(s)-minorUnits] + "." + s[len(s)-minorUnits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
