// Tfbindgen writes typed Go bindings for Terraform provider types from the
// provider's schema.
//
// Usage (from //go:generate in the bindings package):
//
//	tfbindgen -schema schema.json -types types.txt [-refresh]
//
// types.txt lists the types to bind, one per line: "resource aws_vpc",
// "data aws_region", "ephemeral aws_secretsmanager_random_password"; blank
// lines and lines starting with # are ignored. schema.json is the output of
// `terraform providers schema -json` trimmed to those types and the provider
// configuration; it is committed, so generation needs no network and no
// Terraform. When a listed type is missing from it, or with -refresh,
// tfbindgen runs Terraform (offline, from the provider mirror; see
// paydr/internal/tfcli) to read the full schema and writes the trimmed
// schema anew.
//
// For each type it writes one file, named after the kind and type, holding the
// arguments struct (one field per argument and nested block, typed from the
// schema), the handle with a typed reference method per attribute, and the
// encoder that checks required arguments and block item counts. provider.go
// holds the provider configuration. Files it wrote before for types no longer
// listed are removed. Every file starts with the "Code generated" line and
// records the provider version and the schema's SHA-256.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"

	"paydr/internal/tfcli"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tfbindgen:", err)
		os.Exit(1)
	}
}

type config struct {
	schemaPath string
	typesPath  string
	outDir     string
	pkg        string
	provider   string
	local      string
	version    string
	refresh    bool
}

func run(args []string) error {
	var c config
	fs := flag.NewFlagSet("tfbindgen", flag.ContinueOnError)
	fs.StringVar(&c.schemaPath, "schema", "schema.json", "trimmed provider schema (read, and written on refresh)")
	fs.StringVar(&c.typesPath, "types", "types.txt", "list of types to bind")
	fs.StringVar(&c.outDir, "out", ".", "output directory")
	fs.StringVar(&c.pkg, "pkg", "aws", "package name")
	fs.StringVar(&c.provider, "provider", "registry.terraform.io/hashicorp/aws", "provider address")
	fs.StringVar(&c.local, "local", "aws", "provider local name")
	fs.StringVar(&c.version, "version", tfcli.ProviderVersion, "provider version")
	fs.BoolVar(&c.refresh, "refresh", false, "read the schema from Terraform even if the trimmed one has every type")
	if err := fs.Parse(args); err != nil {
		return err
	}
	types, err := readTypes(c.typesPath)
	if err != nil {
		return err
	}
	ps, raw, err := loadSchema(c, types)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	g := &generator{
		pkg:       c.pkg,
		local:     c.local,
		version:   c.version,
		source:    strings.TrimPrefix(c.provider, "registry.terraform.io/"),
		schemaSum: hex.EncodeToString(sum[:]),
		command:   "tfbindgen " + strings.Join(args, " "),
	}
	return g.writeAll(c.outDir, ps, types)
}

// typeRef is one line of the types list.
type typeRef struct {
	kind string // resource, data, ephemeral
	name string
}

func readTypes(path string) ([]typeRef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read types: %w", err)
	}
	var out []typeRef
	seen := map[typeRef]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || (f[0] != "resource" && f[0] != "data" && f[0] != "ephemeral") {
			return nil, fmt.Errorf("%s:%d: want \"resource|data|ephemeral TYPE\", got %q", path, i+1, line)
		}
		t := typeRef{f[0], f[1]}
		if seen[t] {
			return nil, fmt.Errorf("%s:%d: %s %s listed twice", path, i+1, t.kind, t.name)
		}
		seen[t] = true
		out = append(out, t)
	}
	return out, nil
}

func schemaMap(p *tfjson.ProviderSchema, kind string) map[string]*tfjson.Schema {
	switch kind {
	case "data":
		return p.DataSourceSchemas
	case "ephemeral":
		return p.EphemeralResourceSchemas
	}
	return p.ResourceSchemas
}

func jsonKey(kind string) string {
	switch kind {
	case "data":
		return "data_source_schemas"
	case "ephemeral":
		return "ephemeral_resource_schemas"
	}
	return "resource_schemas"
}

// loadSchema returns the provider schema for the listed types and the bytes
// of the trimmed schema file, refreshing that file from Terraform when needed.
func loadSchema(c config, types []typeRef) (*tfjson.ProviderSchema, []byte, error) {
	raw, err := os.ReadFile(c.schemaPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read schema: %w", err)
	}
	if err == nil && !c.refresh {
		ps, err := parseSchema(raw, c.provider)
		if err != nil {
			return nil, nil, err
		}
		if missing := missingTypes(ps, types); len(missing) == 0 {
			return ps, raw, nil
		} else {
			fmt.Fprintf(os.Stderr, "tfbindgen: %s lacks %s; reading the schema from Terraform\n", c.schemaPath, strings.Join(missing, ", "))
		}
	}
	full, err := readFullSchema(c)
	if err != nil {
		return nil, nil, err
	}
	trimmed, err := trim(full, c.provider, types)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(c.schemaPath, trimmed, 0o644); err != nil {
		return nil, nil, fmt.Errorf("write schema: %w", err)
	}
	ps, err := parseSchema(trimmed, c.provider)
	if err != nil {
		return nil, nil, err
	}
	if missing := missingTypes(ps, types); len(missing) > 0 {
		return nil, nil, fmt.Errorf("provider %s %s has no %s", c.provider, c.version, strings.Join(missing, ", "))
	}
	return ps, trimmed, nil
}

func parseSchema(raw []byte, provider string) (*tfjson.ProviderSchema, error) {
	var all tfjson.ProviderSchemas
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	if err := all.Validate(); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	ps, ok := all.Schemas[provider]
	if !ok {
		return nil, fmt.Errorf("parse schema: no provider %s in it", provider)
	}
	return ps, nil
}

func missingTypes(ps *tfjson.ProviderSchema, types []typeRef) []string {
	var missing []string
	for _, t := range types {
		if _, ok := schemaMap(ps, t.kind)[t.name]; !ok {
			missing = append(missing, t.kind+" "+t.name)
		}
	}
	return missing
}

// readFullSchema runs terraform providers schema -json in a scratch directory.
func readFullSchema(c config) ([]byte, error) {
	dir, err := os.MkdirTemp("", "tfbindgen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := fmt.Sprintf(`{"terraform":{"required_providers":{%q:{"source":%q,"version":%q}}}}`, c.local, c.provider, c.version)
	if err := os.WriteFile(filepath.Join(dir, "main.tf.json"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	tf, err := tfcli.New(dir, tfcli.Options{})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := tf.Init(ctx); err != nil {
		return nil, fmt.Errorf("terraform init: %w", err)
	}
	ps, err := tf.ProvidersSchema(ctx)
	if err != nil {
		return nil, fmt.Errorf("terraform providers schema: %w", err)
	}
	return json.Marshal(ps)
}

// trim keeps the provider configuration and the listed types, as generic
// JSON so that no field of the schema is lost, and writes it with sorted keys.
func trim(full []byte, provider string, types []typeRef) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(full, &doc); err != nil {
		return nil, fmt.Errorf("trim schema: %w", err)
	}
	schemas, _ := doc["provider_schemas"].(map[string]any)
	p, _ := schemas[provider].(map[string]any)
	if p == nil {
		return nil, fmt.Errorf("trim schema: no provider %s", provider)
	}
	out := map[string]any{"provider": p["provider"]}
	for _, t := range types {
		key := jsonKey(t.kind)
		src, _ := p[key].(map[string]any)
		s, ok := src[t.name]
		if !ok {
			continue
		}
		m, _ := out[key].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out[key] = m
		}
		m[t.name] = s
	}
	trimmed := map[string]any{
		"format_version":   doc["format_version"],
		"provider_schemas": map[string]any{provider: out},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(trimmed); err != nil {
		return nil, fmt.Errorf("trim schema: %w", err)
	}
	return buf.Bytes(), nil
}
