package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"paydr/internal/needs"
)

// sdkServicePrefix is where the AWS SDK for Go v2 keeps its service
// clients: github.com/aws/aws-sdk-go-v2/service/<service>.
const sdkServicePrefix = "github.com/aws/aws-sdk-go-v2/service/"

// iamPrefixes maps an SDK service package to its IAM action prefix. A
// service the code starts to call must be added here (the scan refuses a
// service it cannot name).
var iamPrefixes = map[string]string{
	"backup":         "backup",
	"cloudwatch":     "cloudwatch",
	"cloudwatchlogs": "logs",
	"dynamodb":       "dynamodb",
	"ec2":            "ec2",
	"eventbridge":    "events",
	"iam":            "iam",
	"kms":            "kms",
	"lambda":         "lambda",
	"rds":            "rds",
	"route53":        "route53",
	"secretsmanager": "secretsmanager",
	"sns":            "sns",
	"ssm":            "ssm",
	"sts":            "sts",
}

// operationActions lists the SDK operations whose IAM action is not
// <prefix>:<Operation>, and those that need no permission at all ("").
var operationActions = map[string]string{
	"lambda:Invoke":             "lambda:InvokeFunction",
	"lambda:InvokeWithResponse": "lambda:InvokeFunction",
	"sts:GetCallerIdentity":     "", // allowed to every principal
}

// waiterOperations names the operation each SDK waiter polls. A waiter the
// code starts to use must be added here.
var waiterOperations = map[string]string{}

// goListPackage is the part of `go list -json` the scan reads.
type goListPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	Module     *struct{ Main bool }
}

// awsCalls returns the IAM actions of the AWS SDK operations called by the
// packages of this module that pattern's packages link (`go list -deps`),
// with their call sites. It type-checks each of the module's packages from
// source (its dependencies from the compiler's export data) and finds every
// use of an SDK operation: a method whose input is
// *<service>.<Operation>Input, called on a client or on an interface the
// code defines for one, and the paginators and waiters that call them.
func awsCalls(t *testing.T, patterns ...string) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		needs.Tool(t, fmt.Errorf("the go command is not on PATH (the scan lists the packages each binary links with go list): %w", err))
	}
	args := append([]string{"list", "-e", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export,Module"}, patterns...)
	cmd := exec.Command(goBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	exports := map[string]string{}
	var mine []goListPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goListPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list: %v", err)
		}
		exports[p.ImportPath] = p.Export
		if p.Module != nil && p.Module.Main {
			mine = append(mine, p)
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f := exports[path]
		if f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	root := moduleRoot(t)
	calls := map[string][]string{}
	add := func(action string, pos token.Pos) {
		p := fset.Position(pos)
		rel, err := filepath.Rel(root, p.Filename)
		if err != nil {
			rel = p.Filename
		}
		calls[action] = append(calls[action], fmt.Sprintf("%s:%d", filepath.ToSlash(rel), p.Line))
	}
	for _, p := range mine {
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}, Uses: map[*ast.Ident]types.Object{}}
		conf := types.Config{Importer: imp}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", p.ImportPath, err)
		}
		for sel, s := range info.Selections {
			if s.Kind() == types.FieldVal {
				continue
			}
			fn, ok := s.Obj().(*types.Func)
			if !ok {
				continue
			}
			if service, op, ok := sdkOperation(fn); ok {
				add(action(t, service, op), sel.Sel.Pos())
			}
		}
		for id, obj := range info.Uses {
			fn, ok := obj.(*types.Func)
			if !ok || fn.Pkg() == nil || !strings.HasPrefix(fn.Pkg().Path(), sdkServicePrefix) {
				continue
			}
			if sig := fn.Type().(*types.Signature); sig.Recv() != nil {
				continue
			}
			service := strings.TrimPrefix(fn.Pkg().Path(), sdkServicePrefix)
			name := fn.Name()
			switch {
			case strings.HasPrefix(name, "New") && strings.HasSuffix(name, "Paginator"):
				add(action(t, service, strings.TrimSuffix(strings.TrimPrefix(name, "New"), "Paginator")), id.Pos())
			case strings.HasPrefix(name, "New") && strings.HasSuffix(name, "Waiter"):
				op, ok := waiterOperations[service+"."+name]
				if !ok {
					t.Errorf("%s: %s.%s: add the operation this waiter polls to waiterOperations", fset.Position(id.Pos()), service, name)
					continue
				}
				add(action(t, service, op), id.Pos())
			}
		}
	}
	for _, sites := range calls {
		sort.Strings(sites)
	}
	delete(calls, "")
	return calls
}

// sdkOperation reports whether fn is an AWS SDK operation: a method whose
// input is *<service>.<Name>Input, named <Name>.
func sdkOperation(fn *types.Func) (service, op string, ok bool) {
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil || sig.Recv() == nil {
		return "", "", false
	}
	for i := range sig.Params().Len() {
		ptr, isPtr := sig.Params().At(i).Type().(*types.Pointer)
		if !isPtr {
			continue
		}
		named, isNamed := ptr.Elem().(*types.Named)
		if !isNamed || named.Obj().Pkg() == nil {
			continue
		}
		path := named.Obj().Pkg().Path()
		if !strings.HasPrefix(path, sdkServicePrefix) || strings.Contains(strings.TrimPrefix(path, sdkServicePrefix), "/") {
			continue
		}
		if named.Obj().Name() == fn.Name()+"Input" {
			return strings.TrimPrefix(path, sdkServicePrefix), fn.Name(), true
		}
	}
	return "", "", false
}

// action returns the IAM action of operation op of an SDK service, "" when
// it needs no permission.
func action(t *testing.T, service, op string) string {
	t.Helper()
	prefix, ok := iamPrefixes[service]
	if !ok {
		t.Errorf("the code calls %s.%s: add the IAM prefix of service %s to iamPrefixes", service, op, service)
		return ""
	}
	a := prefix + ":" + op
	if alias, ok := operationActions[a]; ok {
		return alias
	}
	return a
}

// moduleRoot returns the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
