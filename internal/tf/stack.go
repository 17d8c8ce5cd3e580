package tf

import (
	"encoding/json"
	"regexp"
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
	comment         string
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

// Comment sets the text of the configuration's root "//" property, which
// Terraform ignores: a note to whoever reads or applies the JSON by hand.
func (s *Stack) Comment(text string) { s.comment = text }

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
