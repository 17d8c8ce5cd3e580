package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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

// Identities makes the identities of the iam step in the emulator
// (package identity, which links the AWS SDK's IAM and STS clients: only
// paydr-aws links it, and gives it to Up).
type Identities interface {
	// Make makes (or keeps) the operator user and the role credentials r
	// asks for, while the emulator does not enforce IAM.
	Make(ctx context.Context, r env.IAMRequest) (*env.IAM, error)
	// CheckRefused returns nil when the emulator at endpoint refuses its
	// default test credentials.
	CheckRefused(ctx context.Context, endpoint string) error
}

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
	req := env.IAMRequest{Endpoint: m.Moto.Endpoint, Suffix: m.Suffix, Prev: prev, ProcessorRoles: map[env.Slot]string{}}
	for _, s := range env.Slots {
		out := string(s) + "_processor_role_arn"
		if req.ProcessorRoles[s] = m.OutputString(out); req.ProcessorRoles[s] == "" {
			return "", fmt.Errorf("up: iam: terraform output %s is missing; run paydr down and paydr up to apply afresh", out)
		}
	}
	if req.DRRole = m.OutputString("dr_role_arn"); req.DRRole == "" {
		return "", errors.New("up: iam: terraform output dr_role_arn is missing; run paydr down and paydr up to apply afresh")
	}
	ids, err := u.o.Identities.Make(ctx, req)
	if err != nil {
		return "", fmt.Errorf("up: iam: %w", err)
	}
	if !u.moto.ActionLevelIAM() {
		return "", fmt.Errorf("up: iam: moto's start-up hook did not load its IAM part (no %q in %s): enforced, every policy naming a resource would refuse everything; run paydr down and paydr up (or paydr up --no-iam)", "Allow statements naming resources", u.moto.LogPath())
	}
	if err := u.moto.EnforceIAM(ctx, true); err != nil {
		return "", fmt.Errorf("up: iam: %w", err)
	}
	// Enforced means the default credentials no longer work.
	if err := u.o.Identities.CheckRefused(ctx, m.Moto.Endpoint); err != nil {
		return "", fmt.Errorf("up: iam: after /moto-api/reset-auth 0: %w", err)
	}
	ids.Enforced = true
	m.Moto.IAM = ids
	return fmt.Sprintf("enforced: processors as %s and %s, DR commands as %s, tests as %s; moto's test credentials refused",
		principal(ids.Processors[env.SlotPrimary].Identity), principal(ids.Processors[env.SlotSecondary].Identity), principal(ids.DR.Identity), principal(ids.Operator.Identity)), nil
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

// principal returns the user or role an identity ARN names:
// "payment-dr-automation-local" for
// arn:aws:sts::<account>:assumed-role/payment-dr-automation-local/paydr-dr,
// "paydr-operator-local" for arn:aws:iam::<account>:user/paydr-operator-local.
func principal(identity string) string {
	if _, rest, ok := strings.Cut(identity, ":assumed-role/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	return identity[strings.LastIndex(identity, "/")+1:]
}
