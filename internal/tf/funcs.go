package tf

import (
	"encoding/json"
	"strings"
)

// Call returns the Terraform function call name(args...) as a value of type T,
// for example Call[String]("lower", name). Arguments may be literals or
// expressions.
func Call[T any, PT interface {
	*T
	Value
	setTerm(term)
}](name string, args ...Value) T {
	parts := make([]string, len(args))
	terms := make([]term, len(args))
	for i, a := range args {
		terms[i] = a.term()
		parts[i] = terms[i].hcl()
	}
	var v T
	PT(&v).setTerm(term{kind: tExpr, s: name + "(" + strings.Join(parts, ", ") + ")", call: true, items: terms})
	return v
}

// JSONEncode returns jsonencode(v). When v holds no expression it is encoded
// at synthesis time, as Terraform would (object keys sorted), so the
// configuration carries the final document.
func JSONEncode(v Value) String {
	t := v.term()
	if t.literal() {
		b, err := json.Marshal(t.plain())
		if err != nil {
			// plain() yields only strings, numbers, bools, slices and maps.
			panic("tf.JSONEncode: " + err.Error())
		}
		return S(string(b))
	}
	return Call[String]("jsonencode", v)
}

// FileBase64SHA256 returns filebase64sha256(path): the base64 SHA-256 of a
// file, evaluated by Terraform when it reads the configuration.
func FileBase64SHA256(path String) String {
	return Call[String]("filebase64sha256", path)
}

// ModulePath returns a path relative to the directory of the synthesized
// configuration: "${path.module}/rel".
func ModulePath(rel string) String {
	return Join(Expr[String]("path.module"), S("/"+rel))
}
