package tf

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Value is a typed Terraform value: a literal or an expression. The zero value
// of every Value type is "not set", and unset attributes are left out of the
// synthesized configuration.
type Value interface {
	// IsSet reports whether the value was given, as a literal or an expression.
	IsSet() bool
	term() term
}

// termKind is the shape of a value as it is rendered.
type termKind uint8

const (
	tUnset termKind = iota
	tNull
	tString
	tNumber
	tBool
	tList
	tMap
	tExpr     // an HCL expression, s holds its source
	tTemplate // a string template: literal parts and expressions, in items
)

// term is the rendering tree behind every Value.
type term struct {
	kind  termKind
	s     string // string literal, number text or expression source
	b     bool
	call  bool            // a tExpr made by Call, whose items are its arguments
	items []term          // list elements, template parts or call arguments
	m     map[string]term // map entries
}

func (t term) isSet() bool { return t.kind != tUnset }

// String is a Terraform string: a literal made by [S] or an expression.
type String struct{ t term }

// Number is a Terraform number: a literal made by [N] or [F], or an expression.
type Number struct{ t term }

// Bool is a Terraform bool: a literal made by [B] or an expression.
type Bool struct{ t term }

// Any is a value of any Terraform type: a literal built by [Raw] or an
// expression. It types attributes whose schema type is dynamic or an object.
type Any struct{ t term }

// List is a Terraform list of T: literal elements from [L] or an expression
// that evaluates to a list.
type List[T Value] struct{ t term }

// Set is a Terraform set of T. It is written like a list; Terraform removes
// duplicates and ignores order.
type Set[T Value] struct{ t term }

// Map is a Terraform map of T with string keys.
type Map[T Value] struct{ t term }

// IsSet reports whether the string was given.
func (v String) IsSet() bool { return v.t.isSet() }

// IsSet reports whether the number was given.
func (v Number) IsSet() bool { return v.t.isSet() }

// IsSet reports whether the bool was given.
func (v Bool) IsSet() bool { return v.t.isSet() }

// IsSet reports whether the value was given.
func (v Any) IsSet() bool { return v.t.isSet() }

// IsSet reports whether the list was given.
func (v List[T]) IsSet() bool { return v.t.isSet() }

// IsSet reports whether the set was given.
func (v Set[T]) IsSet() bool { return v.t.isSet() }

// IsSet reports whether the map was given.
func (v Map[T]) IsSet() bool { return v.t.isSet() }

func (v String) term() term  { return v.t }
func (v Number) term() term  { return v.t }
func (v Bool) term() term    { return v.t }
func (v Any) term() term     { return v.t }
func (v List[T]) term() term { return v.t }
func (v Set[T]) term() term  { return v.t }
func (v Map[T]) term() term  { return v.t }

func (v *String) setTerm(t term)  { v.t = t }
func (v *Number) setTerm(t term)  { v.t = t }
func (v *Bool) setTerm(t term)    { v.t = t }
func (v *Any) setTerm(t term)     { v.t = t }
func (v *List[T]) setTerm(t term) { v.t = t }
func (v *Set[T]) setTerm(t term)  { v.t = t }
func (v *Map[T]) setTerm(t term)  { v.t = t }

// S returns a literal string.
func S(v string) String { return String{term{kind: tString, s: v}} }

// N returns a literal integer number.
func N[I ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64](v I) Number {
	if v < 0 {
		return Number{term{kind: tNumber, s: strconv.FormatInt(int64(v), 10)}}
	}
	return Number{term{kind: tNumber, s: strconv.FormatUint(uint64(v), 10)}}
}

// F returns a literal number with a fraction. It panics on NaN and infinities,
// which Terraform cannot represent.
func F(v float64) Number {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		panic(fmt.Sprintf("tf.F: %v is not a Terraform number", v))
	}
	return Number{term{kind: tNumber, s: strconv.FormatFloat(v, 'g', -1, 64)}}
}

// B returns a literal bool.
func B(v bool) Bool { return Bool{term{kind: tBool, b: v}} }

// Null returns an explicit null of type T, which tells the provider to use
// its default even where an unset attribute would be inherited.
func Null[T any, PT interface {
	*T
	Value
	setTerm(term)
}]() T {
	var v T
	PT(&v).setTerm(term{kind: tNull})
	return v
}

// L returns a literal list of the given elements.
func L[T Value](items ...T) List[T] {
	return List[T]{listTerm(items)}
}

// SetOf returns a literal set of the given elements.
func SetOf[T Value](items ...T) Set[T] {
	return Set[T]{listTerm(items)}
}

// Strings returns a literal list of strings.
func Strings(items ...string) List[String] {
	t := term{kind: tList, items: make([]term, len(items))}
	for i, s := range items {
		t.items[i] = term{kind: tString, s: s}
	}
	return List[String]{t}
}

// StringSet returns a literal set of strings.
func StringSet(items ...string) Set[String] {
	return Set[String]{Strings(items...).t}
}

// M returns a literal map.
func M[T Value](entries map[string]T) Map[T] {
	t := term{kind: tMap, m: make(map[string]term, len(entries))}
	for k, v := range entries {
		t.m[k] = v.term()
	}
	return Map[T]{t}
}

// StringMap returns a literal map of strings, such as a tags map.
func StringMap(entries map[string]string) Map[String] {
	t := term{kind: tMap, m: make(map[string]term, len(entries))}
	for k, v := range entries {
		t.m[k] = term{kind: tString, s: v}
	}
	return Map[String]{t}
}

func listTerm[T Value](items []T) term {
	t := term{kind: tList, items: make([]term, len(items))}
	for i, v := range items {
		t.items[i] = v.term()
	}
	return t
}

// Expr returns a value of type T whose content is the Terraform expression
// src, such as `var.suffix` or `aws_vpc.main.id`. Prefer the typed references
// of generated bindings; Expr is for what they do not cover. References in src
// are checked at synthesis like any other.
func Expr[T any, PT interface {
	*T
	Value
	setTerm(term)
}](src string) T {
	var v T
	PT(&v).setTerm(term{kind: tExpr, s: src})
	return v
}

// As converts a value to another value type without changing its content. Use
// it where Terraform converts between types, such as a list used as a set.
func As[T any, PT interface {
	*T
	Value
	setTerm(term)
}](v Value) T {
	var out T
	PT(&out).setTerm(v.term())
	return out
}

// Obj is a literal object or map for [Raw]; its values may be Go values or
// [Value]s.
type Obj map[string]any

// Raw converts a Go value into an [Any]: strings, bools, integers, floats,
// slices, maps with string keys, [Obj] and any [Value], nested freely. It is
// for documents such as IAM policies passed to [JSONEncode]. It panics on a
// type it cannot convert, which is a programming error.
func Raw(v any) Any { return Any{rawTerm(v)} }

func rawTerm(v any) term {
	switch x := v.(type) {
	case nil:
		return term{kind: tNull}
	case Value:
		return x.term()
	case string:
		return term{kind: tString, s: x}
	case bool:
		return term{kind: tBool, b: x}
	case int:
		return N(x).t
	case int64:
		return N(x).t
	case float64:
		return F(x).t
	case []string:
		return Strings(x...).t
	case []any:
		t := term{kind: tList, items: make([]term, len(x))}
		for i, e := range x {
			t.items[i] = rawTerm(e)
		}
		return t
	case []Obj:
		t := term{kind: tList, items: make([]term, len(x))}
		for i, e := range x {
			t.items[i] = rawTerm(e)
		}
		return t
	case Obj:
		return rawTerm(map[string]any(x))
	case map[string]any:
		t := term{kind: tMap, m: make(map[string]term, len(x))}
		for k, e := range x {
			t.m[k] = rawTerm(e)
		}
		return t
	case map[string]string:
		return StringMap(x).t
	default:
		panic(fmt.Sprintf("tf.Raw: cannot convert %T", v))
	}
}

// Join returns a string template: literal strings and string-valued
// expressions concatenated, such as Join(table.Arn(), S("/stream/*")).
func Join(parts ...String) String {
	t := term{kind: tTemplate}
	for _, p := range parts {
		pt := p.t
		switch pt.kind {
		case tUnset:
			continue
		case tTemplate:
			t.items = append(t.items, pt.items...)
		default:
			t.items = append(t.items, pt)
		}
	}
	if len(t.items) == 1 {
		return String{t.items[0]}
	}
	return String{t}
}

// Sprintf formats a string template; each %s takes the next String, which may
// be an expression. Only %s and %% are understood.
func Sprintf(format string, args ...String) String {
	var parts []String
	var lit strings.Builder
	n := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			lit.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case '%':
			lit.WriteByte('%')
		case 's':
			if n >= len(args) {
				panic("tf.Sprintf: missing argument for %s in " + strconv.Quote(format))
			}
			if lit.Len() > 0 {
				parts = append(parts, S(lit.String()))
				lit.Reset()
			}
			parts = append(parts, args[n])
			n++
		default:
			panic("tf.Sprintf: only %s and %% are supported in " + strconv.Quote(format))
		}
	}
	if n != len(args) {
		panic(fmt.Sprintf("tf.Sprintf: %d arguments for %d %%s in %q", len(args), n, format))
	}
	if lit.Len() > 0 {
		parts = append(parts, S(lit.String()))
	}
	return Join(parts...)
}

// escapeTemplate escapes the template sequences Terraform would interpret in a
// literal string.
func escapeTemplate(s string) string {
	if !strings.Contains(s, "${") && !strings.Contains(s, "%{") {
		return s
	}
	s = strings.ReplaceAll(s, "${", "$${")
	return strings.ReplaceAll(s, "%{", "%%{")
}

// json renders a term as a value for encoding/json: strings are Terraform JSON
// templates, so literals are escaped and expressions wrapped in ${}.
func (t term) json() any { return t.value(true) }

// plain converts a literal term into plain Go values, for encoding/json:
// strings as they are, for a document such as jsonencode's result.
func (t term) plain() any { return t.value(false) }

// value renders a term for encoding/json; template says whether strings are
// Terraform JSON templates (escaped) or plain.
func (t term) value(template bool) any {
	switch t.kind {
	case tNull:
		return nil
	case tString:
		if !template {
			return t.s
		}
		return escapeTemplate(t.s)
	case tNumber:
		return jsonNumber(t.s)
	case tBool:
		return t.b
	case tList:
		out := make([]any, len(t.items))
		for i, e := range t.items {
			out[i] = e.value(template)
		}
		return out
	case tMap:
		out := make(map[string]any, len(t.m))
		for k, e := range t.m {
			out[k] = e.value(template)
		}
		return out
	case tExpr:
		return "${" + t.s + "}"
	case tTemplate:
		var b strings.Builder
		for _, p := range t.items {
			switch p.kind {
			case tString:
				b.WriteString(escapeTemplate(p.s))
			default:
				b.WriteString("${")
				b.WriteString(p.hcl())
				b.WriteString("}")
			}
		}
		return b.String()
	}
	return nil
}

// hcl renders a term as HCL expression source, for use inside expressions
// such as function arguments.
func (t term) hcl() string {
	switch t.kind {
	case tNull, tUnset:
		return "null"
	case tString:
		return quoteHCL(t.s)
	case tNumber:
		return t.s
	case tBool:
		return strconv.FormatBool(t.b)
	case tList:
		parts := make([]string, len(t.items))
		for i, e := range t.items {
			parts[i] = e.hcl()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case tMap:
		keys := slices.Sorted(maps.Keys(t.m))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = quoteHCL(k) + " = " + t.m[k].hcl()
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case tExpr:
		return t.s
	case tTemplate:
		var b strings.Builder
		b.WriteByte('"')
		for _, p := range t.items {
			if p.kind == tString {
				s := quoteHCL(p.s)
				b.WriteString(s[1 : len(s)-1])
				continue
			}
			b.WriteString("${")
			b.WriteString(p.hcl())
			b.WriteString("}")
		}
		b.WriteByte('"')
		return b.String()
	}
	return "null"
}

// literal reports whether the term holds no expression anywhere.
func (t term) literal() bool {
	switch t.kind {
	case tExpr, tTemplate:
		return false
	case tList:
		for _, e := range t.items {
			if !e.literal() {
				return false
			}
		}
	case tMap:
		for _, e := range t.m {
			if !e.literal() {
				return false
			}
		}
	}
	return true
}

// exprs appends the source of every expression in the term to dst.
func (t term) exprs(dst []string) []string {
	switch t.kind {
	case tExpr:
		if t.call {
			// A function call made by Call: its arguments carry the references.
			for _, e := range t.items {
				dst = e.exprs(dst)
			}
			return dst
		}
		dst = append(dst, t.s)
	case tList, tTemplate:
		for _, e := range t.items {
			dst = e.exprs(dst)
		}
	case tMap:
		for _, k := range slices.Sorted(maps.Keys(t.m)) {
			dst = t.m[k].exprs(dst)
		}
	}
	return dst
}

func quoteHCL(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$', '%':
			b.WriteByte(c)
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Object returns an object value with exactly the given attribute names;
// those without a set value in fields are written as null, as Terraform
// requires every attribute of an object type. Generated object structs use it.
func Object(fields map[string]Value, names []string) Any {
	t := term{kind: tMap, m: make(map[string]term, len(names))}
	for _, n := range names {
		v := fields[n]
		if v == nil || !v.IsSet() {
			t.m[n] = term{kind: tNull}
			continue
		}
		t.m[n] = v.term()
	}
	return Any{t}
}
