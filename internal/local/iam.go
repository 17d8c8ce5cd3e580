package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"paydr/internal/local/env"
)

// The iam step of Up: once the stack is applied, the emulator enforces IAM
// and each component calls it as it calls AWS. Each processor runs on
// credentials of its region's processor role, as Lambda gives it; DR
// commands and drills on the DR automation role's; paydr's own calls that
// no role stands for (tests, inspection) on an operator user's. A call the
// code makes that the stack's policies do not grant is then refused
// locally as on AWS.
//
// What the emulator can and cannot check (moto 5.2):
//   - Terraform applies with moto's default test credentials, so Up
//     switches enforcement off in its moto step and on again here, after
//     apply.
//   - moto authorizes most services' actions against the resource "*"; its
//     start-up hook (moto.HookActionLevelIAM) lets the roles' statements,
//     which name their resources, match those requests. Enforcement here
//     decides on actions; resource scoping is proven by the stack's static
//     tests of its policies.
//   - Roles are assumed while enforcement is off: their trust policies name
//     AWS services (lambda.amazonaws.com), which moto cannot evaluate for a
//     user's AssumeRole. moto does not expire assumed-role credentials.

// operatorUser is the name of the operator user Up makes in the emulator.
func operatorUser(suffix string) string { return "paydr-operator-" + suffix }

// iamRegion is the region IAM and STS calls are signed for.
const iamRegion = "us-east-1"

// iamTimeout bounds the iam step's calls to the emulator.
const iamTimeout = time.Minute

// enforceIAM is Up's step after apply: it makes (or keeps) the operator
// user, assumes the processor and DR roles, switches enforcement on, and
// checks the emulator then refuses its default credentials.
func (u *upRun) enforceIAM(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, iamTimeout)
	defer cancel()
	m := u.m
	var prev *env.IAM
	if u.prev != nil {
		prev = u.prev.Moto.IAM
	}
	if prev == nil {
		prev = &env.IAM{}
	}
	endpoint := m.Moto.Endpoint
	op, err := u.operator(ctx, endpoint, prev.Operator)
	if err != nil {
		return "", err
	}
	ids := &env.IAM{Operator: op, Processors: map[env.Slot]env.Credentials{}}
	for _, s := range env.Slots {
		out := string(s) + "_processor_role_arn"
		arn := m.OutputString(out)
		if arn == "" {
			return "", fmt.Errorf("up: iam: terraform output %s is missing; run paydr down and paydr up to apply afresh", out)
		}
		c, err := assume(ctx, endpoint, op, arn, "paydr-processor-"+string(s), prev.Processors[s])
		if err != nil {
			return "", fmt.Errorf("up: iam: processor %s: %w", s, err)
		}
		ids.Processors[s] = c
	}
	drARN := m.OutputString("dr_role_arn")
	if drARN == "" {
		return "", errors.New("up: iam: terraform output dr_role_arn is missing; run paydr down and paydr up to apply afresh")
	}
	if ids.DR, err = assume(ctx, endpoint, op, drARN, "paydr-dr", prev.DR); err != nil {
		return "", fmt.Errorf("up: iam: DR role: %w", err)
	}
	if !u.moto.ActionLevelIAM() {
		return "", fmt.Errorf("up: iam: moto's start-up hook did not load its IAM part (no %q in %s): enforced, every policy naming a resource would refuse everything; run paydr down and paydr up (or paydr up --iam off)", "Allow statements naming resources", u.moto.LogPath())
	}
	if err := u.moto.EnforceIAM(ctx, true); err != nil {
		return "", fmt.Errorf("up: iam: %w", err)
	}
	// Enforced means the default credentials no longer work.
	if _, err := iam.NewFromConfig(motoConfig(endpoint, env.TestCredentials)).ListUsers(ctx, &iam.ListUsersInput{}); err == nil {
		return "", fmt.Errorf("up: iam: the emulator at %s still answers its default test credentials after /moto-api/reset-auth 0", endpoint)
	}
	ids.Enforced = true
	m.Moto.IAM = ids
	return fmt.Sprintf("enforced: processors as %s and %s, DR commands as %s, tests as %s; moto's test credentials refused",
		roleOf(ids.Processors[env.SlotPrimary].Identity), roleOf(ids.Processors[env.SlotSecondary].Identity), roleOf(ids.DR.Identity), roleOf(op.Identity)), nil
}

// relaxIAM is part of Up's moto step: enforcement off, so that Terraform
// (which applies with the test credentials) and a reset of the emulator
// work on an emulator an earlier up left enforcing.
func (u *upRun) relaxIAM(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := u.moto.EnforceIAM(ctx, false); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	return nil
}

// operator returns the operator user's credentials: prev when the emulator
// still knows them, else a new access key of the user (made with
// AdministratorAccess when missing), replacing its old keys.
func (u *upRun) operator(ctx context.Context, endpoint string, prev env.Credentials) (env.Credentials, error) {
	if ok, _ := knownAs(ctx, endpoint, prev); ok {
		return prev, nil
	}
	name := operatorUser(u.m.Suffix)
	im := iam.NewFromConfig(motoConfig(endpoint, env.TestCredentials))
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name),
		Tags: []iamtypes.Tag{{Key: aws.String("paydr"), Value: aws.String("local operator")}}}); err != nil && !isCode(err, "EntityAlreadyExists") {
		return env.Credentials{}, fmt.Errorf("up: iam: create user %s: %w", name, err)
	}
	if _, err := im.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(name),
		PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")}); err != nil {
		return env.Credentials{}, fmt.Errorf("up: iam: attach AdministratorAccess to %s: %w", name, err)
	}
	keys, err := im.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(name)})
	if err != nil {
		return env.Credentials{}, fmt.Errorf("up: iam: list access keys of %s: %w", name, err)
	}
	for _, k := range keys.AccessKeyMetadata {
		if _, err := im.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(name), AccessKeyId: k.AccessKeyId}); err != nil {
			return env.Credentials{}, fmt.Errorf("up: iam: delete an old access key of %s: %w", name, err)
		}
	}
	key, err := im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		return env.Credentials{}, fmt.Errorf("up: iam: create an access key for %s: %w", name, err)
	}
	c := env.Credentials{AccessKeyID: aws.ToString(key.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(key.AccessKey.SecretAccessKey)}
	if c.Identity, err = callerIdentity(ctx, endpoint, c); err != nil {
		return env.Credentials{}, fmt.Errorf("up: iam: operator %s: %w", name, err)
	}
	return c, nil
}

// assume returns credentials of the role roleARN: prev when the emulator
// still knows them as that role's, else new ones from sts:AssumeRole by op.
func assume(ctx context.Context, endpoint string, op env.Credentials, roleARN, session string, prev env.Credentials) (env.Credentials, error) {
	if ok, _ := knownAs(ctx, endpoint, prev); ok && roleOf(prev.Identity) == roleName(roleARN) {
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
	if roleOf(c.Identity) != roleName(roleARN) {
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
	return aws.Config{Region: iamRegion, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)}
}

// roleName returns the name of the role arn:aws:iam::<account>:role/<name>.
func roleName(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// roleOf returns the user or role an identity ARN names:
// "payment-dr-automation-local" for
// arn:aws:sts::<account>:assumed-role/payment-dr-automation-local/paydr-dr,
// "paydr-operator-local" for arn:aws:iam::<account>:user/paydr-operator-local.
func roleOf(identity string) string {
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
