// Package aws holds typed bindings for the hashicorp/aws provider types
// paydr's stacks use, generated from the provider schema.
//
// Each type in types.txt has a handle (such as [VPC]) made by its
// constructor ([NewVPC]) in a tf.Scope, an arguments struct ([VPCArgs]) with
// one field per argument and nested block, and a method per attribute that
// returns a typed reference ([VPC.ID]). Regenerate with
//
//	go generate ./internal/tf/aws
//
// which reads the committed, trimmed schema.json; a type added to types.txt
// is read from the provider mirror through Terraform on that run.
package aws

//go:generate go run paydr/cmd/tfbindgen -schema schema.json -types types.txt
