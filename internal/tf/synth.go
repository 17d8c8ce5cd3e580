package tf

// Rendering a stack as Terraform JSON: the Body every block writes into,
// the checks that collect Diagnostics, and Synth.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

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
	if s.comment != "" {
		doc["//"] = s.comment
	}

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
