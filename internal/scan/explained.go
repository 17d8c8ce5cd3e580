package scan

import "path"

// explanation says why a finding stays, for the resources matching
// Resource (a path.Match pattern over the Terraform address; "" matches
// every resource).
type explanation struct {
	ID       string
	Resource string
	Reason   string
}

// explained are the findings paydr keeps, each with its reason. A finding
// not listed here fails the scan, whatever its severity.
var explained = []explanation{
	{ID: "AWS-0343", Resource: "aws_rds_cluster.*", Reason: "deletion protection follows the environment: on where the suffix is prod (stack.Config.Production), off elsewhere so that test and drill environments can be destroyed; paydr scan --suffix prod shows it on"},
}

// Explain returns the reason f is kept, or "".
func Explain(f Finding) string {
	for _, e := range explained {
		if e.ID != f.ID && e.ID != f.AVDID {
			continue
		}
		if e.Resource == "" {
			return e.Reason
		}
		if ok, _ := path.Match(e.Resource, f.Resource); ok {
			return e.Reason
		}
	}
	return ""
}
