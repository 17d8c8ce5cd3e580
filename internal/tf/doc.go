// Package tf models a Terraform configuration in Go and writes it as Terraform
// JSON (.tf.json).
//
// A [Stack] holds everything one root module declares: the terraform block
// (required version, required providers with their pins, the S3 backend),
// provider configurations with aliases, resources, data sources, ephemeral
// resources, variables, locals and outputs. Values are typed: [String],
// [Number], [Bool], [List], [Set], [Map] and [Any] each hold either a literal
// or an expression (a reference to another object's attribute, a variable, a
// function call). Typed bindings for provider resources, generated from the
// provider schema by cmd/tfbindgen, build on this package; see
// paydr/internal/tf/aws.
//
// Synthesis ([Stack.Synth]) collects every problem it finds, each with the
// address of the block it belongs to, instead of stopping at the first: a
// missing required argument, a nested block outside its item bounds, a
// reference to an object the stack does not declare, two objects with one
// address. Its output is deterministic: the same stack gives byte-identical
// JSON, with object keys sorted.
package tf
