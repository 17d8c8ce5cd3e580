package daemon

import (
	"slices"
	"testing"
)

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil || p <= 0 {
		t.Fatalf("FreePort() = %d, %v", p, err)
	}
	if lo, hi := ephemeralRange(); p >= lo && p <= hi {
		t.Errorf("FreePort() = %d, in the ephemeral range %d-%d outgoing connections take source ports from", p, lo, hi)
	}
	if !PortFree(p) {
		t.Errorf("FreePort() = %d, which can't be listened on", p)
	}
}

func TestParsePortRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"", 0, 0, false},
		{"32768", 0, 0, false},
		{"60999 32768", 0, 0, false},
		{"0 60999", 0, 0, false},
		{"32768 70000", 0, 0, false},
		{"a b", 0, 0, false},
	} {
		lo, hi, ok := parsePortRange(tc.in)
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("parsePortRange(%q) = %d, %d, %v; want %d, %d, %v", tc.in, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
}

func TestPortsOutside(t *testing.T) {
	for _, tc := range []struct {
		lo, hi int
		want   []portRange
	}{
		{32768, 60999, []portRange{{10000, 32767}, {61000, 65535}}},
		{1024, 65535, nil},
		{1024, 20000, []portRange{{20001, 65535}}},
		{40000, 65535, []portRange{{10000, 39999}}},
		{10000, 10000, []portRange{{10001, 65535}}},
		{10001, 65534, []portRange{{10000, 10000}, {65535, 65535}}},
	} {
		if got := portsOutside(tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("portsOutside(%d, %d) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestPickPort(t *testing.T) {
	ranges := []portRange{{10000, 10002}, {20000, 20001}}
	var got []int
	for i := range 5 {
		got = append(got, pickPort(ranges, func(n int) int {
			if n != 5 {
				t.Fatalf("pickPort drew from %d ports, want 5", n)
			}
			return i
		}))
	}
	if want := []int{10000, 10001, 10002, 20000, 20001}; !slices.Equal(got, want) {
		t.Errorf("pickPort over each draw = %v, want %v", got, want)
	}
	if p := pickPort(nil, func(int) int { t.Fatal("drew from no ports"); return 0 }); p != 0 {
		t.Errorf("pickPort(no ranges) = %d, want 0", p)
	}
}
