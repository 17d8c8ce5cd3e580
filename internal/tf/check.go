package tf

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// checkReferences parses every expression in the stack and reports those that
// do not parse and those that refer to a resource, data source, ephemeral
// resource, variable or local value the stack does not declare.
func (s *Stack) checkReferences(sites []exprSite) Diagnostics {
	var diags Diagnostics
	seen := map[exprSite]bool{}
	for _, site := range sites {
		if seen[site] {
			continue
		}
		seen[site] = true
		if tr, ok := simpleTraversal(site.src); ok {
			if msg := s.resolveNames(tr); msg != "" {
				diags.addf(site.addr, "%s", msg)
			}
			continue
		}
		expr, parseDiags := hclsyntax.ParseExpression([]byte(site.src), site.addr, hcl.InitialPos)
		if parseDiags.HasErrors() {
			diags.addf(site.addr, "invalid expression %q: %s", site.src, parseDiags[0].Summary)
			continue
		}
		for _, tr := range expr.Variables() {
			if msg := s.resolve(tr); msg != "" {
				diags.addf(site.addr, "%s", msg)
			}
		}
	}
	return diags
}

// simpleTraversal splits a plain reference such as aws_vpc.main.id or
// data.aws_region.current.name[0] into its leading names without a parser.
func simpleTraversal(src string) ([]string, bool) {
	head := src
	if i := strings.IndexByte(src, '['); i >= 0 {
		head = src[:i]
	}
	for i := 0; i < len(head); i++ {
		c := head[i]
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return nil, false
		}
	}
	if strings.ContainsAny(src[len(head):], "()\"{} +*/?:<>=!&|,") {
		return nil, false
	}
	parts := strings.Split(head, ".")
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
	}
	return parts, true
}

// resolve returns why a traversal names nothing in the stack, or "".
func (s *Stack) resolve(tr hcl.Traversal) string {
	var names []string
	names = append(names, tr.RootName())
	for _, step := range tr[1:] {
		a, ok := step.(hcl.TraverseAttr)
		if !ok {
			break
		}
		names = append(names, a.Name)
	}
	return s.resolveNames(names)
}

// resolveNames returns why a reference, given as its leading names, names
// nothing in the stack, or "".
func (s *Stack) resolveNames(names []string) string {
	root := names[0]
	name := func(i int) string {
		if i < len(names) {
			return names[i]
		}
		return ""
	}
	switch root {
	case "path", "terraform", "self", "count", "each":
		return ""
	case "var":
		if _, ok := s.variables[name(1)]; !ok {
			return "reference to undeclared variable var." + name(1)
		}
		return ""
	case "local":
		if _, ok := s.locals[name(1)]; !ok {
			return "reference to undeclared local value local." + name(1)
		}
		return ""
	case "data", "ephemeral":
		addr := root + "." + name(1) + "." + name(2)
		if _, ok := s.byAddr[addr]; !ok {
			return "reference to " + addr + ", which this stack does not declare"
		}
		return ""
	}
	addr := root + "." + name(1)
	if _, ok := s.byAddr[addr]; !ok {
		return "reference to " + addr + ", which this stack does not declare"
	}
	return ""
}
