package environ

import (
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMapNamesEveryField: every field of Vars has its variable, and only set
// fields are in the map.
func TestMapNamesEveryField(t *testing.T) {
	var all Vars[string]
	rv := reflect.ValueOf(&all).Elem()
	for i := range rv.NumField() {
		rv.Field(i).SetString(rv.Type().Field(i).Name)
	}
	m := all.Map()
	if len(m) != rv.NumField() {
		t.Errorf("Map() of a full Vars has %d variables, want %d (one per field): %v", len(m), rv.NumField(), m)
	}
	if diff := cmp.Diff(map[string]string{Region: "us-east-1", Listen: "127.0.0.1:1"}, Vars[string]{Region: "us-east-1", Listen: "127.0.0.1:1"}.Map()); diff != "" {
		t.Errorf("Map() (-want +got):\n%s", diff)
	}
}
