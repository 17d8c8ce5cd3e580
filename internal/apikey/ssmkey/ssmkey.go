// Package ssmkey reads the payments API key from its SSM SecureString
// (paydr/internal/apikey says where it is kept and how a request carries
// it). It is apart from apikey because it links the SSM client, whose
// package initialisation the paydr command and the stack's synthesis must
// not pay.
package ssmkey

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"paydr/internal/apikey"
)

// ParamsAPI is the part of the SSM client Read calls.
type ParamsAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Read returns the key held by the SecureString parameter name, decrypted
// (ssm:GetParameter with decryption, and kms:Decrypt on the parameter's key
// through SSM). A parameter that is not a SecureString, or whose value fails
// apikey.Check, is an error: the caller must fail closed. Errors never carry
// the value.
func Read(ctx context.Context, api ParamsAPI, name string) (string, error) {
	out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("apikey: get parameter %s: %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("apikey: parameter %s has no value", name)
	}
	if t := out.Parameter.Type; t != types.ParameterTypeSecureString {
		return "", fmt.Errorf("apikey: parameter %s is a %s parameter, want a SecureString: the key must be stored encrypted", name, t)
	}
	key := *out.Parameter.Value
	if err := apikey.Check(name, key); err != nil {
		return "", err
	}
	return key, nil
}
