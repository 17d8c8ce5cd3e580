package tf

import (
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

// resolve returns why a traversal names nothing in the stack, or "".
func (s *Stack) resolve(tr hcl.Traversal) string {
	root := tr.RootName()
	name := func(i int) string {
		if i < len(tr) {
			if a, ok := tr[i].(hcl.TraverseAttr); ok {
				return a.Name
			}
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
