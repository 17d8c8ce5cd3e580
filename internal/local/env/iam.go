package env

// IAM records the identities of an environment whose emulator enforces IAM
// (paydr up does, after apply): each component calls AWS as it does on AWS,
// so a call its role does not grant is refused locally too.
type IAM struct {
	// Enforced is true once the emulator refuses requests that no policy
	// of their identity allows, and its default "test" credentials.
	Enforced bool `json:"enforced"`
	// Operator is an IAM user with AdministratorAccess that paydr up makes
	// in the emulator: the identity of paydr's own calls that no role of the
	// stack stands for (tests, inspection), as an operator's would be.
	Operator Credentials `json:"operator"`
	// DR is the DR automation role (payment-dr-automation-<suffix>),
	// assumed by the operator: the identity of DR commands and drills.
	DR Credentials `json:"dr"`
	// Processors holds each slot's processor role
	// (payment-processor-<region>-<suffix>), assumed as Lambda assumes it:
	// the identity the slot's processor runs with.
	Processors map[Slot]Credentials `json:"processors"`
}

// Credentials are an identity's AWS credentials in the emulator. They are
// the emulator's, worthless outside it; env.json is written 0600 all the
// same.
type Credentials struct {
	// Identity is the ARN sts:GetCallerIdentity answers for them:
	// arn:aws:iam::<account>:user/<name> or
	// arn:aws:sts::<account>:assumed-role/<role>/<session>.
	Identity        string `json:"identity"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}

// TestCredentials are moto's default credentials, which it accepts while
// it does not enforce IAM.
var TestCredentials = Credentials{AccessKeyID: "test", SecretAccessKey: "test"}

// Environ returns c as the AWS SDK's environment variables
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for assumed roles,
// AWS_SESSION_TOKEN).
func (c Credentials) Environ() map[string]string {
	e := map[string]string{"AWS_ACCESS_KEY_ID": c.AccessKeyID, "AWS_SECRET_ACCESS_KEY": c.SecretAccessKey}
	if c.SessionToken != "" {
		e["AWS_SESSION_TOKEN"] = c.SessionToken
	}
	return e
}

// DRCredentials returns the credentials DR commands and drills call the
// emulator with: the DR role's when IAM is enforced, else TestCredentials.
func (m *Manifest) DRCredentials() Credentials {
	if m.Moto.IAM != nil && m.Moto.IAM.DR.AccessKeyID != "" {
		return m.Moto.IAM.DR
	}
	return TestCredentials
}

// OperatorCredentials returns the credentials of paydr's own calls that no
// role of the stack stands for: the operator user's when IAM is enforced,
// else TestCredentials.
func (m *Manifest) OperatorCredentials() Credentials {
	if m.Moto.IAM != nil && m.Moto.IAM.Operator.AccessKeyID != "" {
		return m.Moto.IAM.Operator
	}
	return TestCredentials
}

// IAMRequest says which identities paydr up's iam step asks for (see
// package identity).
type IAMRequest struct {
	// Endpoint is the emulator's (not a fault proxy's).
	Endpoint string
	// Suffix is the environment suffix (the operator user's name).
	Suffix string
	// ProcessorRoles are the ARNs of each slot's processor role, DRRole the
	// DR automation role's.
	ProcessorRoles map[Slot]string
	DRRole         string
	// Prev are the identities of the last up; those the emulator still
	// knows are kept, so running processors keep their credentials.
	Prev *IAM
}
