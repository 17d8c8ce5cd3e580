package tf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

func jsonNumber(s string) json.Number { return json.Number(s) }

// Kind says which top-level block type an object belongs to.
type Kind uint8

// The kinds of objects a stack declares.
const (
	KindResource  Kind = iota // resource "type" "name"
	KindData                  // data "type" "name"
	KindEphemeral             // ephemeral "type" "name"
)

func (k Kind) block() string {
	switch k {
	case KindData:
		return "data"
	case KindEphemeral:
		return "ephemeral"
	}
	return "resource"
}

// addrPrefix is what references to objects of this kind start with.
func (k Kind) addrPrefix() string {
	switch k {
	case KindData:
		return "data."
	case KindEphemeral:
		return "ephemeral."
	}
	return ""
}

// Encoder writes one block's arguments and nested blocks into a [Body].
// Generated argument structs implement it.
type Encoder interface {
	EncodeTF(b *Body)
}

// Schema describes an object type to the stack: its Terraform type name and
// the names of its top-level arguments and blocks, which lifecycle
// ignore_changes entries are checked against.
type Schema struct {
	Type  string
	Kind  Kind
	Names map[string]bool
}

// Scope is where new objects are declared: a [*Stack], or a stack viewed
// through a provider configuration by [Stack.In].
type Scope interface {
	scope() (*Stack, *Provider)
}

// Stack is one Terraform root module.
type Stack struct {
	name            string
	requiredVersion string
	required        map[string]RequiredProvider
	backend         Backend
	providers       []*Provider
	objects         []*Resource
	byAddr          map[string]*Resource
	variables       map[string]*Variable
	locals          map[string]Value
	outputs         map[string]Output
	order           []string // declaration order of outputs, for messages
	diags           Diagnostics
}

// NewStack returns an empty stack with the given name (the name of the
// synthesized stack directory).
func NewStack(name string) *Stack {
	return &Stack{
		name:      name,
		required:  map[string]RequiredProvider{},
		byAddr:    map[string]*Resource{},
		variables: map[string]*Variable{},
		locals:    map[string]Value{},
		outputs:   map[string]Output{},
	}
}

func (s *Stack) scope() (*Stack, *Provider) { return s, nil }

// Name returns the stack's name.
func (s *Stack) Name() string { return s.name }

// In returns a scope that declares objects in s with provider configuration p.
func (s *Stack) In(p *Provider) Scope { return providerScope{s, p} }

type providerScope struct {
	s *Stack
	p *Provider
}

func (ps providerScope) scope() (*Stack, *Provider) { return ps.s, ps.p }

// RequiredVersion sets the Terraform version constraint, such as ">= 1.11".
func (s *Stack) RequiredVersion(constraint string) { s.requiredVersion = constraint }

// RequiredProvider is one entry of terraform.required_providers.
type RequiredProvider struct {
	Source  string // such as "hashicorp/aws"
	Version string // a version constraint; an exact pin such as "5.100.0"
}

// RequireProvider records a provider requirement under its local name. A
// second call for the same name must agree with the first.
func (s *Stack) RequireProvider(local string, rp RequiredProvider) {
	if old, ok := s.required[local]; ok && old != rp {
		s.diags.addf("terraform.required_providers."+local, "conflicting requirements %s@%s and %s@%s",
			old.Source, old.Version, rp.Source, rp.Version)
		return
	}
	s.required[local] = rp
}

// Backend is the state backend of terraform.backend.
type Backend interface {
	backend() (name string, config map[string]any)
}

// S3Backend stores state in S3 with locking.
type S3Backend struct {
	Bucket  string
	Key     string
	Region  string
	Encrypt bool
	// UseLockfile locks with an S3 lock file (Terraform >= 1.10).
	UseLockfile bool
	// DynamoDBTable is the lock table of older setups; it may be combined
	// with UseLockfile during a migration.
	DynamoDBTable string
	// Endpoints overrides service endpoints, for an emulator.
	Endpoints map[string]string
	// Extra holds further settings verbatim (such as skip_credentials_validation).
	Extra map[string]any
}

func (b S3Backend) backend() (string, map[string]any) {
	c := map[string]any{"bucket": b.Bucket, "key": b.Key, "region": b.Region, "encrypt": b.Encrypt}
	if b.UseLockfile {
		c["use_lockfile"] = true
	}
	if b.DynamoDBTable != "" {
		c["dynamodb_table"] = b.DynamoDBTable
	}
	if len(b.Endpoints) > 0 {
		c["endpoints"] = b.Endpoints
	}
	for k, v := range b.Extra {
		c[k] = v
	}
	return "s3", c
}

// LocalBackend keeps state in a local file.
type LocalBackend struct{ Path string }

func (b LocalBackend) backend() (string, map[string]any) {
	c := map[string]any{}
	if b.Path != "" {
		c["path"] = b.Path
	}
	return "local", c
}

// SetBackend sets the state backend.
func (s *Stack) SetBackend(b Backend) { s.backend = b }

// Provider is one provider configuration, default or aliased.
type Provider struct {
	local string
	alias string
	body  Encoder
}

// Ref returns how resources name this configuration: "aws" or "aws.secondary".
func (p *Provider) Ref() string {
	if p.alias == "" {
		return p.local
	}
	return p.local + "." + p.alias
}

// Alias returns the configuration's alias, empty for the default one.
func (p *Provider) Alias() string { return p.alias }

// AddProvider declares a provider configuration of the provider with the
// given local name. Generated bindings wrap it with typed arguments.
func AddProvider(s *Stack, local, alias string, rp RequiredProvider, args Encoder) *Provider {
	s.RequireProvider(local, rp)
	p := &Provider{local: local, alias: alias, body: args}
	for _, q := range s.providers {
		if q.local == local && q.alias == alias {
			s.diags.addf("provider."+p.Ref(), "declared twice")
		}
	}
	s.providers = append(s.providers, p)
	return p
}

// Lifecycle is a resource's lifecycle block.
type Lifecycle struct {
	// IgnoreChanges lists top-level argument names whose changes Terraform
	// ignores after creation.
	IgnoreChanges       []string
	PreventDestroy      bool
	CreateBeforeDestroy bool
	// ReplaceTriggeredBy lists references whose change replaces the resource.
	ReplaceTriggeredBy []string
}

// Dependency is anything a depends_on entry can name: every resource, data
// source and ephemeral resource handle.
type Dependency interface {
	tfResource() *Resource
}

// Resource is one declared resource, data source or ephemeral resource.
// Generated handles embed it.
type Resource struct {
	stack     *Stack
	schema    *Schema
	name      string
	body      Encoder
	provider  *Provider
	dependsOn []Dependency
	lifecycle *Lifecycle
}

func (r *Resource) tfResource() *Resource { return r }

// Addr returns the object's address, such as "aws_vpc.main" or
// "data.aws_region.current".
func (r *Resource) Addr() string {
	return r.schema.Kind.addrPrefix() + r.schema.Type + "." + r.name
}

// DependsOn adds explicit dependencies.
func (r *Resource) DependsOn(deps ...Dependency) { r.dependsOn = append(r.dependsOn, deps...) }

// Lifecycle sets the lifecycle block.
func (r *Resource) Lifecycle(l Lifecycle) { r.lifecycle = &l }

// attrExpr returns the expression source of an attribute of r.
func (r *Resource) attrExpr(path string) string { return r.Addr() + "." + path }

// Attr returns a typed reference to attribute path of the object, such as
// tf.Attr[tf.String](vpc, "id"). Generated handles have a method per
// attribute; Attr reaches nested paths such as "endpoint[0].address".
func Attr[T any, PT interface {
	*T
	Value
	setTerm(term)
}](d Dependency, path string) T {
	return Expr[T, PT](d.tfResource().attrExpr(path))
}

var namePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Declare registers a new object in the scope and returns its handle.
// Generated constructors call it.
func Declare(sc Scope, schema *Schema, name string, body Encoder) *Resource {
	s, p := sc.scope()
	r := &Resource{stack: s, schema: schema, name: name, body: body, provider: p}
	addr := r.Addr()
	if !namePattern.MatchString(name) {
		s.diags.addf(addr, "invalid name %q: use letters, digits, underscores and dashes, starting with a letter or underscore", name)
	}
	if _, dup := s.byAddr[addr]; dup {
		s.diags.addf(addr, "declared twice: each %s needs a unique name", schema.Kind.block())
		return r
	}
	s.byAddr[addr] = r
	s.objects = append(s.objects, r)
	return r
}

// Variable is an input variable.
type Variable struct {
	Type        string // a type constraint, such as "string"
	Description string
	Default     Value
	Sensitive   bool
	// Ephemeral variables may be used only in ephemeral contexts and are
	// never stored in plan or state.
	Ephemeral bool
	name      string
}

// Variable declares an input variable and returns a reference to it of type T.
func DeclareVariable[T any, PT interface {
	*T
	Value
	setTerm(term)
}](s *Stack, name string, v Variable) T {
	if _, dup := s.variables[name]; dup {
		s.diags.addf("var."+name, "declared twice")
	}
	v.name = name
	s.variables[name] = &v
	return Expr[T, PT]("var." + name)
}

// Local declares a local value and returns a reference to it of type T.
func Local[T any, PT interface {
	*T
	Value
	setTerm(term)
}](s *Stack, name string, v Value) T {
	if _, dup := s.locals[name]; dup {
		s.diags.addf("local."+name, "declared twice")
	}
	s.locals[name] = v
	return Expr[T, PT]("local." + name)
}

// Output is a root module output.
type Output struct {
	Value       Value
	Description string
	Sensitive   bool
}

// Output declares an output.
func (s *Stack) Output(name string, o Output) {
	if _, dup := s.outputs[name]; dup {
		s.diags.addf("output."+name, "declared twice")
		return
	}
	if o.Value == nil || !o.Value.IsSet() {
		s.diags.addf("output."+name, "has no value")
	}
	s.outputs[name] = o
	s.order = append(s.order, name)
}

// Diagnostic is one problem found in a stack, with the address it belongs to.
type Diagnostic struct {
	Address string // such as "aws_vpc.main" or "aws_lambda_function.p.vpc_config"
	Message string
}

func (d Diagnostic) String() string { return d.Address + ": " + d.Message }

// Diagnostics is every problem found in a stack. As an error it lists them all.
type Diagnostics []Diagnostic

func (ds *Diagnostics) addf(addr, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Address: addr, Message: fmt.Sprintf(format, args...)})
}

// Error lists every diagnostic, one per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	if len(ds) == 1 {
		return "synth: " + lines[0]
	}
	return fmt.Sprintf("synth: %d problems:\n  %s", len(ds), strings.Join(lines, "\n  "))
}

// Body receives one block's arguments during synthesis and records problems
// with the block's address. Generated EncodeTF methods write into it.
type Body struct {
	path  string
	m     map[string]any
	diags *Diagnostics
	exprs *[]exprSite
}

// exprSite is an expression found during synthesis and where it was found.
type exprSite struct {
	src  string
	addr string
}

// Path returns the address of the block the body belongs to.
func (b *Body) Path() string { return b.path }

// Attr writes argument name if v is set. A required argument left unset is
// reported.
func (b *Body) Attr(name string, v Value, required bool) {
	if v == nil || !v.IsSet() {
		if required {
			b.diags.addf(b.path, "missing required argument %q", name)
		}
		return
	}
	t := v.term()
	for _, src := range t.exprs(nil) {
		*b.exprs = append(*b.exprs, exprSite{src: src, addr: b.path + "." + name})
	}
	b.m[name] = t.json()
}

// Block opens a nested block called name and returns its body. Blocks of
// one name opened repeatedly form a list, in the order opened.
func (b *Body) Block(name string) *Body {
	child := &Body{m: map[string]any{}, diags: b.diags, exprs: b.exprs}
	list, _ := b.m[name].([]any)
	child.path = fmt.Sprintf("%s.%s[%d]", b.path, name, len(list))
	b.m[name] = append(list, child.m)
	return child
}

// Items checks that a nested block called name appears between min and max
// times; max 0 means no upper bound.
func (b *Body) Items(name string, n, min, max int) {
	switch {
	case n < min && min == 1 && max == 1:
		b.diags.addf(b.path, "missing required block %q", name)
	case n < min:
		b.diags.addf(b.path, "block %q needs at least %d items, has %d", name, min, n)
	case max > 0 && n > max:
		b.diags.addf(b.path, "block %q allows at most %d items, has %d", name, max, n)
	}
}

// Synth checks the stack and renders it as Terraform JSON. On any problem it
// returns [Diagnostics] listing them all, and no JSON.
func (s *Stack) Synth() ([]byte, error) {
	diags := append(Diagnostics(nil), s.diags...)
	var exprs []exprSite
	doc := map[string]any{}

	tfBlock := map[string]any{}
	if s.requiredVersion != "" {
		tfBlock["required_version"] = s.requiredVersion
	}
	if len(s.required) > 0 {
		rp := map[string]any{}
		for k, v := range s.required {
			rp[k] = map[string]any{"source": v.Source, "version": v.Version}
		}
		tfBlock["required_providers"] = rp
	}
	if s.backend != nil {
		name, cfg := s.backend.backend()
		tfBlock["backend"] = map[string]any{name: cfg}
	}
	if len(tfBlock) > 0 {
		doc["terraform"] = tfBlock
	}

	if len(s.providers) > 0 {
		provs := map[string][]any{}
		for _, p := range s.providers {
			body := &Body{path: "provider." + p.Ref(), m: map[string]any{}, diags: &diags, exprs: &exprs}
			if p.body != nil {
				p.body.EncodeTF(body)
			}
			if p.alias != "" {
				body.m["alias"] = p.alias
			}
			provs[p.local] = append(provs[p.local], body.m)
		}
		doc["provider"] = provs
	}

	if len(s.variables) > 0 {
		vars := map[string]any{}
		for name, v := range s.variables {
			m := map[string]any{}
			if v.Type != "" {
				m["type"] = v.Type
			}
			if v.Description != "" {
				m["description"] = v.Description
			}
			if v.Default != nil && v.Default.IsSet() {
				m["default"] = v.Default.term().json()
			}
			if v.Sensitive {
				m["sensitive"] = true
			}
			if v.Ephemeral {
				m["ephemeral"] = true
			}
			vars[name] = m
		}
		doc["variable"] = vars
	}

	if len(s.locals) > 0 {
		locals := map[string]any{}
		for name, v := range s.locals {
			t := v.term()
			for _, src := range t.exprs(nil) {
				exprs = append(exprs, exprSite{src: src, addr: "local." + name})
			}
			locals[name] = t.json()
		}
		doc["locals"] = locals
	}

	for _, r := range s.objects {
		addr := r.Addr()
		body := &Body{path: addr, m: map[string]any{}, diags: &diags, exprs: &exprs}
		if r.body != nil {
			r.body.EncodeTF(body)
		}
		if r.provider != nil {
			body.m["provider"] = r.provider.Ref()
			if !s.hasProvider(r.provider) {
				diags.addf(addr, "provider %s is not declared in this stack", r.provider.Ref())
			}
		}
		if len(r.dependsOn) > 0 {
			deps := make([]string, 0, len(r.dependsOn))
			for _, d := range r.dependsOn {
				dr := d.tfResource()
				if s.byAddr[dr.Addr()] != dr {
					diags.addf(addr, "depends_on names %s, which this stack does not declare", dr.Addr())
				}
				deps = append(deps, dr.Addr())
			}
			sort.Strings(deps)
			body.m["depends_on"] = dedupe(deps)
		}
		if l := r.lifecycle; l != nil {
			lc := map[string]any{}
			if len(l.IgnoreChanges) > 0 {
				for _, name := range l.IgnoreChanges {
					root := name
					if i := strings.IndexAny(root, ".["); i >= 0 {
						root = root[:i]
					}
					if root != "all" && !r.schema.Names[root] {
						diags.addf(addr+".lifecycle", "ignore_changes names %q, which %s does not have", name, r.schema.Type)
					}
				}
				lc["ignore_changes"] = l.IgnoreChanges
			}
			if l.PreventDestroy {
				lc["prevent_destroy"] = true
			}
			if l.CreateBeforeDestroy {
				lc["create_before_destroy"] = true
			}
			if len(l.ReplaceTriggeredBy) > 0 {
				lc["replace_triggered_by"] = l.ReplaceTriggeredBy
				for _, src := range l.ReplaceTriggeredBy {
					exprs = append(exprs, exprSite{src: src, addr: addr + ".lifecycle.replace_triggered_by"})
				}
			}
			body.m["lifecycle"] = lc
		}
		kind := r.schema.Kind.block()
		top, _ := doc[kind].(map[string]map[string]any)
		if top == nil {
			top = map[string]map[string]any{}
			doc[kind] = top
		}
		if top[r.schema.Type] == nil {
			top[r.schema.Type] = map[string]any{}
		}
		top[r.schema.Type][r.name] = body.m
	}

	if len(s.outputs) > 0 {
		outs := map[string]any{}
		for name, o := range s.outputs {
			m := map[string]any{}
			if o.Value != nil && o.Value.IsSet() {
				t := o.Value.term()
				for _, src := range t.exprs(nil) {
					exprs = append(exprs, exprSite{src: src, addr: "output." + name})
				}
				m["value"] = t.json()
			}
			if o.Description != "" {
				m["description"] = o.Description
			}
			if o.Sensitive {
				m["sensitive"] = true
			}
			outs[name] = m
		}
		doc["output"] = outs
	}

	diags = append(diags, s.checkReferences(exprs)...)
	if len(diags) > 0 {
		sort.SliceStable(diags, func(i, j int) bool { return diags[i].Address < diags[j].Address })
		return nil, diags
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("synth %s: encode json: %w", s.name, err)
	}
	return buf.Bytes(), nil
}

func (s *Stack) hasProvider(p *Provider) bool {
	for _, q := range s.providers {
		if q == p {
			return true
		}
	}
	return false
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}
