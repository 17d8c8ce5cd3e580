package tf

import "strconv"

// Objects returns every declared resource, data source and ephemeral
// resource, in declaration order. Checks that look across a stack use it.
func (s *Stack) Objects() []*Resource { return append([]*Resource(nil), s.objects...) }

// Providers returns the provider configurations, in declaration order.
func (s *Stack) Providers() []*Provider { return append([]*Provider(nil), s.providers...) }

// Type returns the object's Terraform type, such as "aws_vpc".
func (r *Resource) Type() string { return r.schema.Type }

// Kind returns whether the object is a resource, data source or ephemeral resource.
func (r *Resource) Kind() Kind { return r.schema.Kind }

// Args returns the arguments the object was declared with: the generated
// arguments struct, such as *aws.VPCArgs.
func (r *Resource) Args() Encoder { return r.body }

// ProviderConfig returns the provider configuration the object uses, or nil
// for the default one.
func (r *Resource) ProviderConfig() *Provider { return r.provider }

// Dependencies returns the explicit depends_on entries.
func (r *Resource) Dependencies() []Dependency { return append([]Dependency(nil), r.dependsOn...) }

// Is reports whether d is this very object.
func (r *Resource) Is(d Dependency) bool { return d != nil && d.tfResource() == r }

// Args returns the provider configuration's arguments, such as *aws.ProviderArgs.
func (p *Provider) Args() Encoder { return p.body }

// Literal returns the string and true when v is a literal.
func (v String) Literal() (string, bool) { return v.t.s, v.t.kind == tString }

// Literal returns the bool and true when v is a literal.
func (v Bool) Literal() (bool, bool) { return v.t.b, v.t.kind == tBool }

// Int returns the number as an integer and true when v is an integer literal.
func (v Number) Int() (int64, bool) {
	if v.t.kind != tNumber {
		return 0, false
	}
	n, err := strconv.ParseInt(v.t.s, 10, 64)
	return n, err == nil
}

// Literal returns the elements and true when v is a list of literal strings.
func (v List[T]) Literal() ([]string, bool) { return literalStrings(v.t) }

// Literal returns the elements and true when v is a set of literal strings.
func (v Set[T]) Literal() ([]string, bool) { return literalStrings(v.t) }

func literalStrings(t term) ([]string, bool) {
	if t.kind != tList {
		return nil, false
	}
	out := make([]string, len(t.items))
	for i, e := range t.items {
		if e.kind != tString {
			return nil, false
		}
		out[i] = e.s
	}
	return out, true
}

// HCL returns v as HCL expression source: a literal rendered as HCL, an
// expression as written. Two values with the same HCL are the same value.
func HCL(v Value) string {
	if v == nil {
		return "null"
	}
	return v.term().hcl()
}
