// Package identity makes the identities of a local environment whose
// emulator enforces IAM (paydr up's iam step, package local): an operator
// user, and credentials of the processor and DR roles from STS AssumeRole,
// as Lambda and an operator get them on AWS. It links the AWS SDK's IAM and
// STS clients, so only paydr-aws links it (local.Identities is its
// interface).
package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"paydr/internal/local/env"
	"paydr/internal/sdkhttp"
)

// OperatorUser is the name of the operator user made in the emulator.
func OperatorUser(suffix string) string { return "paydr-operator-" + suffix }

// iamRegion is the region IAM and STS calls are signed for.
const iamRegion = "us-east-1"

// Maker makes identities in the emulator (local.Identities).
type Maker struct{}

// Make makes (or keeps) the operator user and the role credentials r asks for,
// while the emulator does not enforce IAM: the roles' trust policies name
// AWS services (lambda.amazonaws.com), which moto cannot evaluate for a
// user's AssumeRole. The result is not yet Enforced.
func (Maker) Make(ctx context.Context, r env.IAMRequest) (*env.IAM, error) {
	prev := r.Prev
	if prev == nil {
		prev = &env.IAM{}
	}
	op, err := operator(ctx, r.Endpoint, r.Suffix, prev.Operator)
	if err != nil {
		return nil, err
	}
	ids := &env.IAM{Operator: op, Processors: map[env.Slot]env.Credentials{}}
	for _, s := range env.Slots {
		c, err := assume(ctx, r.Endpoint, op, r.ProcessorRoles[s], "paydr-processor-"+string(s), prev.Processors[s])
		if err != nil {
			return nil, fmt.Errorf("identity: processor %s: %w", s, err)
		}
		ids.Processors[s] = c
	}
	if ids.DR, err = assume(ctx, r.Endpoint, op, r.DRRole, "paydr-dr", prev.DR); err != nil {
		return nil, fmt.Errorf("identity: DR role: %w", err)
	}
	return ids, nil
}

// CheckRefused returns nil when the emulator at endpoint refuses its
// default test credentials, as it does once it enforces IAM.
func (Maker) CheckRefused(ctx context.Context, endpoint string) error {
	if _, err := iam.NewFromConfig(motoConfig(endpoint, env.TestCredentials)).ListUsers(ctx, &iam.ListUsersInput{}); err == nil {
		return fmt.Errorf("identity: the emulator at %s answers its default test credentials", endpoint)
	}
	return nil
}

// operator returns the operator user's credentials: prev when the emulator
// still knows them, else a new access key of the user (made with
// AdministratorAccess when missing), replacing its old keys.
func operator(ctx context.Context, endpoint, suffix string, prev env.Credentials) (env.Credentials, error) {
	if ok, _ := knownAs(ctx, endpoint, prev); ok {
		return prev, nil
	}
	name := OperatorUser(suffix)
	im := iam.NewFromConfig(motoConfig(endpoint, env.TestCredentials))
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name),
		Tags: []iamtypes.Tag{{Key: aws.String("paydr"), Value: aws.String("local operator")}}}); err != nil && !isCode(err, "EntityAlreadyExists") {
		return env.Credentials{}, fmt.Errorf("identity: create user %s: %w", name, err)
	}
	if _, err := im.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(name),
		PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")}); err != nil {
		return env.Credentials{}, fmt.Errorf("identity: attach AdministratorAccess to %s: %w", name, err)
	}
	keys, err := im.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(name)})
	if err != nil {
		return env.Credentials{}, fmt.Errorf("identity: list access keys of %s: %w", name, err)
	}
	for _, k := range keys.AccessKeyMetadata {
		if _, err := im.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(name), AccessKeyId: k.AccessKeyId}); err != nil {
			return env.Credentials{}, fmt.Errorf("identity: delete an old access key of %s: %w", name, err)
		}
	}
	key, err := im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		return env.Credentials{}, fmt.Errorf("identity: create an access key for %s: %w", name, err)
	}
	c := env.Credentials{AccessKeyID: aws.ToString(key.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(key.AccessKey.SecretAccessKey)}
	if c.Identity, err = callerIdentity(ctx, endpoint, c); err != nil {
		return env.Credentials{}, fmt.Errorf("identity: operator %s: %w", name, err)
	}
	return c, nil
}

// assume returns credentials of the role roleARN: prev when the emulator
// still knows them as that role's, else new ones from sts:AssumeRole by op.
func assume(ctx context.Context, endpoint string, op env.Credentials, roleARN, session string, prev env.Credentials) (env.Credentials, error) {
	if ok, _ := knownAs(ctx, endpoint, prev); ok && RoleOf(prev.Identity) == roleName(roleARN) {
		return prev, nil
	}
	out, err := sts.NewFromConfig(motoConfig(endpoint, op)).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String(session), DurationSeconds: aws.Int32(3600)})
	if err != nil {
		return env.Credentials{}, fmt.Errorf("assume %s: %w", roleARN, err)
	}
	c := env.Credentials{AccessKeyID: aws.ToString(out.Credentials.AccessKeyId), SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken: aws.ToString(out.Credentials.SessionToken)}
	if c.Identity, err = callerIdentity(ctx, endpoint, c); err != nil {
		return env.Credentials{}, fmt.Errorf("assume %s: %w", roleARN, err)
	}
	if RoleOf(c.Identity) != roleName(roleARN) {
		return env.Credentials{}, fmt.Errorf("assume %s: the emulator says the credentials are %s", roleARN, c.Identity)
	}
	return c, nil
}

// knownAs reports whether the emulator still answers c.Identity for c. An
// emulator that does not enforce IAM answers a default identity for
// credentials it does not know, so a stale record never matches.
func knownAs(ctx context.Context, endpoint string, c env.Credentials) (bool, error) {
	if c.AccessKeyID == "" || c.Identity == "" {
		return false, nil
	}
	id, err := callerIdentity(ctx, endpoint, c)
	return err == nil && id == c.Identity, err
}

// callerIdentity returns the ARN sts:GetCallerIdentity answers for c.
func callerIdentity(ctx context.Context, endpoint string, c env.Credentials) (string, error) {
	out, err := sts.NewFromConfig(motoConfig(endpoint, c)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("sts GetCallerIdentity: %w", err)
	}
	return aws.ToString(out.Arn), nil
}

// motoConfig is an SDK configuration for the emulator at endpoint with
// credentials c.
func motoConfig(endpoint string, c env.Credentials) aws.Config {
	return aws.Config{Region: iamRegion, BaseEndpoint: aws.String(endpoint), APIOptions: sdkhttp.APIOptions(),
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)}
}

// roleName returns the name of the role arn:aws:iam::<account>:role/<name>.
func roleName(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// roleOf returns the user or role an identity ARN names:
// "payment-dr-automation-local" for
// arn:aws:sts::<account>:assumed-role/payment-dr-automation-local/paydr-dr,
// "paydr-operator-local" for arn:aws:iam::<account>:user/paydr-operator-local.
func RoleOf(identity string) string {
	_, rest, ok := strings.Cut(identity, ":assumed-role/")
	if ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return roleName(identity)
}

// isCode reports whether err is an AWS API error with this code.
func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
