package tf

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTermRendering(t *testing.T) {
	ref := Expr[String]("aws_vpc.main.id")
	tests := []struct {
		name     string
		v        Value
		wantJSON string
		wantHCL  string
	}{
		{"string", S("plain"), `"plain"`, `"plain"`},
		{"string escapes template", S("a ${b} %{c}"), `"a $${b} %%{c}"`, `"a $${b} %%{c}"`},
		{"string quotes", S("say \"hi\"\n"), `"say \"hi\"\n"`, `"say \"hi\"\n"`},
		{"int", N(42), `42`, `42`},
		{"negative", N(-7), `-7`, `-7`},
		{"float", F(0.25), `0.25`, `0.25`},
		{"bool", B(false), `false`, `false`},
		{"null", Null[String](), `null`, `null`},
		{"expression", ref, `"${aws_vpc.main.id}"`, `aws_vpc.main.id`},
		{"list", L(S("a"), ref), `["a","${aws_vpc.main.id}"]`, `["a", aws_vpc.main.id]`},
		{"strings", Strings("x", "y"), `["x","y"]`, `["x", "y"]`},
		{"map sorted", StringMap(map[string]string{"b": "2", "a": "1"}), `{"a":"1","b":"2"}`, `{"a" = "1", "b" = "2"}`},
		{"template", Join(ref, S("/stream/*")), `"${aws_vpc.main.id}/stream/*"`, `"${aws_vpc.main.id}/stream/*"`},
		{"sprintf", Sprintf("arn:%s:x/%s%%", S("aws"), ref), `"arn:aws:x/${aws_vpc.main.id}%"`, `"arn:aws:x/${aws_vpc.main.id}%"`},
		{"join of one literal", Join(S("only")), `"only"`, `"only"`},
		{"call", Call[String]("lower", S("ABC")), `"${lower(\"ABC\")}"`, `lower("ABC")`},
		{"jsonencode literal", JSONEncode(Raw(Obj{"b": 1, "a": []any{"x", true}})), `"{\"a\":[\"x\",true],\"b\":1}"`, `"{\"a\":[\"x\",true],\"b\":1}"`},
		{"jsonencode with reference", JSONEncode(Raw(Obj{"Resource": ref})), `"${jsonencode({\"Resource\" = aws_vpc.main.id})}"`, `jsonencode({"Resource" = aws_vpc.main.id})`},
		{"module path", FileBase64SHA256(ModulePath("p.zip")), `"${filebase64sha256(\"${path.module}/p.zip\")}"`, `filebase64sha256("${path.module}/p.zip")`},
		{"object nulls unset", Object(map[string]Value{"a": S("x")}, []string{"a", "b"}), `{"a":"x","b":null}`, `{"a" = "x", "b" = null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v.term().json())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantJSON, string(got)); diff != "" {
				t.Errorf("json (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHCL, tt.v.term().hcl()); diff != "" {
				t.Errorf("hcl (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnsetValues(t *testing.T) {
	var s String
	var l List[String]
	var m Map[Number]
	for _, v := range []Value{s, l, m, Number{}, Bool{}, Any{}, Set[String]{}} {
		if v.IsSet() {
			t.Errorf("zero %T IsSet() = true, want false", v)
		}
	}
	if !S("").IsSet() {
		t.Error(`S("").IsSet() = false, want true: an empty string is a value`)
	}
}

func TestSprintfMisuse(t *testing.T) {
	for _, f := range []func(){
		func() { Sprintf("%s %s", S("one")) },
		func() { Sprintf("%d", S("one")) },
		func() { Sprintf("none", S("extra")) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("Sprintf misuse did not panic")
				}
			}()
			f()
		}()
	}
}
