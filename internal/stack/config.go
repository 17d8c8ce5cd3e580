package stack

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
)

// Target says where a stack will be deployed.
type Target string

// The deployment targets.
const (
	// TargetAWS deploys to real AWS: every resource, state in S3.
	TargetAWS Target = "aws"
	// TargetLocal deploys to the local AWS API emulator (moto): provider
	// endpoints point at it, state is a local file, and the resources the
	// emulator cannot create are left out (see [LocalGaps]).
	TargetLocal Target = "local"
)

// Config is everything a stack is built from. [FromEnv] fills it from the
// earlier pipeline's environment variables; flags override; [Config.Validate]
// checks it.
type Config struct {
	// EnvironmentSuffix ends every resource name, so environments never collide.
	EnvironmentSuffix string
	// StateBucket and StateBucketRegion locate the S3 state backend.
	StateBucket       string
	StateBucketRegion string
	// StateLockTable is the DynamoDB lock table of older setups.
	StateLockTable string
	// AWSRegion is the region the pipeline ran in (recorded, not used for placement).
	AWSRegion string
	// PrimaryRegion holds the writer; SecondaryRegion the standby.
	PrimaryRegion   string
	SecondaryRegion string
	// Tags for provider default_tags.
	Repository   string
	CommitAuthor string
	PRNumber     string
	Team         string
	// CreatedAt is tagged only when given, so two syntheses of one commit agree.
	CreatedAt string
	// Route53Domain is the hosted zone; default migration-<suffix>.internal.
	Route53Domain string
	// Route53Zone says whether the hosted zone is private (answering only
	// inside the stack's two VPCs) or public: [ZonePrivate], [ZonePublic],
	// or "" to choose by the domain: private under a name reserved for
	// private use (.internal, .local, .home.arpa, .alt; see
	// [PrivateUseName]), which is never delegated, and public otherwise.
	// Preflight refuses a public zone under such a name, and any zone under
	// names reserved for documentation and testing (.test, .example,
	// example.com, .invalid, .localhost; see [ReservedDomain]).
	Route53Zone string
	// Route53ZoneID is an existing public hosted zone (such as
	// Z0123456789ABCDEFGHIJ) that holds, or is a parent of, Route53Domain:
	// the stack writes its records there and creates no zone. Unset, the
	// stack creates the zone, and a public one must then be delegated (its
	// name servers are an output). Only for a public domain: it is refused
	// with a private zone or a reserved name.
	Route53ZoneID string
	// DBInstanceClass sizes the Aurora instances.
	DBInstanceClass string
	// DBEngineVersion is the Aurora PostgreSQL version of the global
	// cluster, pinned: automatic minor upgrades are off, and changing it
	// upgrades the global cluster in place (both regions). When AWS moves
	// the clusters itself (a forced upgrade at a version's end of support),
	// set it to the version AWS moved to, or the next plan tries a
	// downgrade, which RDS refuses.
	DBEngineVersion string
	// DBPasswordVersion is bumped to rotate the master password (write-only
	// arguments are sent only when their version changes).
	DBPasswordVersion int
	// DBAppPasswordVersion is bumped to rotate the password of the
	// processors' database role: a new random password is written,
	// write-only, into its secret, and the provisioning function sets it
	// on the role (the processors read the secret again within 10
	// minutes; new connections use it).
	DBAppPasswordVersion int
	// APIKeyVersion is bumped to rotate the payments API key: a new random
	// key is written, write-only, into both regions' /paydr/<suffix>/api/key
	// (write-only arguments are sent only when their version changes). The
	// processors read it again within a minute; clients must then send the
	// new key.
	APIKeyVersion int
	// RPOBoundSeconds bounds what a failover may lose: the writer stops
	// acknowledging commits while its standby lags more (Aurora
	// PostgreSQL's rds.global_db_rpo, at least 20 seconds). The stack sets
	// it on the primary cluster's parameter group when the group is
	// created; paydr dr moves it with the writer after that.
	RPOBoundSeconds int
	// EnableDMS adds the DMS replication subnet group and instance.
	EnableDMS bool
	// DMSCreateVPCRole creates dms-vpc-role, the role DMS looks up by that
	// exact name to manage its network interfaces. It is one per account,
	// not per environment: creating it where it exists (made by another
	// environment, the DMS console or an earlier account setup) fails with
	// EntityAlreadyExists, and destroying the environment that made it
	// breaks DMS for every other one. So it is off by default; turn it on
	// (--dms-create-vpc-role) in exactly one stack of an account that lacks
	// the role, or create it once outside the stacks. DMS subnet groups fail
	// to create in an account without it.
	DMSCreateVPCRole bool
	// Target is where the stack deploys: aws or local.
	Target Target
	// Endpoint is the emulator's URL, for the local target. The providers
	// reach it through AWS_ENDPOINT_URL (tfcli.EmulatorEnv), not an endpoints
	// block; the configuration's root comment names it (LocalComment).
	Endpoint string
	// LocalStatePath is the state file of the local target.
	LocalStatePath string
	// ProcessorZip is the processor's deployment package, relative to the
	// synthesized stack directory.
	ProcessorZip string
	// HealthCheckInterval and HealthCheckFailureThreshold configure the Route
	// 53 health checks (seconds: 10 or 30; failures: 1 to 10).
	HealthCheckInterval         int
	HealthCheckFailureThreshold int
}

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		EnvironmentSuffix:           "dev",
		StateBucket:                 "iac-rlhf-tf-states",
		StateBucketRegion:           "us-east-1",
		StateLockTable:              "iac-rlhf-tf-state-locks",
		AWSRegion:                   "us-east-1",
		PrimaryRegion:               "us-east-1",
		SecondaryRegion:             "us-west-2",
		Repository:                  "unknown",
		CommitAuthor:                "unknown",
		PRNumber:                    "unknown",
		Team:                        "unknown",
		DBInstanceClass:             "db.r5.large",
		DBEngineVersion:             "15.8",
		DBPasswordVersion:           1,
		DBAppPasswordVersion:        1,
		APIKeyVersion:               1,
		RPOBoundSeconds:             DefaultRPOBoundSeconds,
		EnableDMS:                   true,
		DMSCreateVPCRole:            false,
		Target:                      TargetAWS,
		ProcessorZip:                "processor.zip",
		HealthCheckInterval:         10,
		HealthCheckFailureThreshold: 3,
	}
}

// DefaultRPOBoundSeconds is the default bound on loss: the mission's five
// minutes.
const DefaultRPOBoundSeconds = 300

// MinRPOBoundSeconds is the least rds.global_db_rpo Aurora accepts.
const MinRPOBoundSeconds = 20

// EnvVars maps the earlier pipeline's environment variables to what they set.
var EnvVars = []struct {
	Name  string
	Field string
}{
	{"ENVIRONMENT_SUFFIX", "EnvironmentSuffix"},
	{"TERRAFORM_STATE_BUCKET", "StateBucket"},
	{"TERRAFORM_STATE_BUCKET_REGION", "StateBucketRegion"},
	{"AWS_REGION", "AWSRegion"},
	{"REPOSITORY", "Repository"},
	{"COMMIT_AUTHOR", "CommitAuthor"},
	{"PR_NUMBER", "PRNumber"},
	{"TEAM", "Team"},
	{"ROUTE53_DOMAIN", "Route53Domain"},
	{"ROUTE53_ZONE", "Route53Zone"},
	{"ROUTE53_ZONE_ID", "Route53ZoneID"},
	{"CREATED_AT", "CreatedAt"},
}

// FromEnv returns [Defaults] overridden by the environment variables in
// [EnvVars], as read by getenv (os.Getenv when nil).
func FromEnv(getenv func(string) string) Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Defaults()
	fields := map[string]*string{
		"EnvironmentSuffix": &c.EnvironmentSuffix, "StateBucket": &c.StateBucket,
		"StateBucketRegion": &c.StateBucketRegion, "AWSRegion": &c.AWSRegion,
		"Repository": &c.Repository, "CommitAuthor": &c.CommitAuthor, "PRNumber": &c.PRNumber,
		"Team": &c.Team, "Route53Domain": &c.Route53Domain, "Route53Zone": &c.Route53Zone, "Route53ZoneID": &c.Route53ZoneID,
		"CreatedAt": &c.CreatedAt,
	}
	for _, ev := range EnvVars {
		if v := getenv(ev.Name); v != "" {
			*fields[ev.Field] = v
		}
	}
	return c
}

// The hosted zone's visibility (Config.Route53Zone).
const (
	ZonePrivate = "private"
	ZonePublic  = "public"
)

// PrivateZone reports whether the hosted zone is private: as
// Route53Zone says, or, when it is unset, when the domain is under a name
// reserved for private use ([PrivateUseName]).
func (c Config) PrivateZone() bool {
	switch c.Route53Zone {
	case ZonePrivate:
		return true
	case ZonePublic:
		return false
	}
	return PrivateUseName(c.Domain()) != ""
}

// StackName is the stack's name: TapStack<suffix>.
func (c Config) StackName() string { return "TapStack" + c.EnvironmentSuffix }

// Domain returns the hosted zone's name.
func (c Config) Domain() string {
	if c.Route53Domain != "" {
		return strings.TrimSuffix(strings.ToLower(c.Route53Domain), ".")
	}
	return "migration-" + c.EnvironmentSuffix + ".internal"
}

// Production reports whether the environment is anything but a development
// one (dev*, test, local, ci, or a pull request's pr<number>); production
// environments get deletion protection and final snapshots.
func (c Config) Production() bool {
	switch c.EnvironmentSuffix {
	case "dev", "test", "local", "ci":
		return false
	}
	return !prPattern().MatchString(c.EnvironmentSuffix) && !strings.HasPrefix(c.EnvironmentSuffix, "dev")
}

var (
	prPattern     = lazyRegexp(`^pr[0-9]+$`)
	suffixPattern = lazyRegexp(`^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$`)
	regionPattern = lazyRegexp(`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`)
	bucketPattern = lazyRegexp(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	domainPattern = lazyRegexp(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$`)
	zoneIDPattern = lazyRegexp(`^Z[A-Z0-9]{1,31}$`)
	classPattern  = lazyRegexp(`^db\.[a-z0-9]+\.[a-z0-9]+$`)
	enginePattern = lazyRegexp(`^[0-9]+(\.[0-9]+)*$`)
)

// lazyRegexp returns expr compiled on first use, not when the program
// starts: every paydr command links this package, and paydr --help need not
// compile the configuration's patterns (about 4% of its start-up).
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// Validate checks the configuration and returns every problem, each naming
// its field and the environment variable or flag that sets it.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !suffixPattern().MatchString(c.EnvironmentSuffix) {
		bad("ENVIRONMENT_SUFFIX (--suffix)", "%q must be 1-16 lower-case letters, digits or dashes, starting and ending with a letter or digit (it ends resource names such as payment-sessions-<suffix>)", c.EnvironmentSuffix)
	}
	if !bucketPattern().MatchString(c.StateBucket) {
		bad("TERRAFORM_STATE_BUCKET (--state-bucket)", "%q is not a valid S3 bucket name", c.StateBucket)
	}
	for _, r := range []struct{ name, v string }{
		{"TERRAFORM_STATE_BUCKET_REGION (--state-bucket-region)", c.StateBucketRegion},
		{"--primary-region", c.PrimaryRegion},
		{"--secondary-region", c.SecondaryRegion},
	} {
		if !regionPattern().MatchString(r.v) {
			bad(r.name, "%q is not an AWS region name such as us-east-1", r.v)
		}
	}
	if c.PrimaryRegion == c.SecondaryRegion {
		bad("--secondary-region", "%q is also the primary region: a DR stack needs two regions", c.SecondaryRegion)
	}
	if d := c.Domain(); !domainPattern().MatchString(d) || len(d) > 253 {
		bad("ROUTE53_DOMAIN (--domain)", "%q is not a valid domain name", d)
	}
	switch c.Route53Zone {
	case "", ZonePrivate, ZonePublic:
	default:
		bad("ROUTE53_ZONE", "%q is not a zone type: use %s, %s, or leave it unset (private under names reserved for private use, such as .internal; public otherwise)", c.Route53Zone, ZonePrivate, ZonePublic)
	}
	if c.Route53ZoneID != "" {
		d := c.Domain()
		reserved := ReservedDomain(d)
		if reserved == "" {
			reserved = PrivateUseName(d)
		}
		switch {
		case !zoneIDPattern().MatchString(c.Route53ZoneID):
			bad("ROUTE53_ZONE_ID (--zone-id)", "%q is not a Route 53 hosted zone id: Z and up to 31 upper-case letters and digits, such as Z0123456789ABCDEFGHIJ (without /hostedzone/)", c.Route53ZoneID)
		case c.Route53Domain == "":
			bad("ROUTE53_ZONE_ID (--zone-id)", "an existing zone is used only with the domain it holds: set ROUTE53_DOMAIN (--domain) to that domain, or leave ROUTE53_ZONE_ID unset for the private %s", d)
		case reserved != "":
			bad("ROUTE53_ZONE_ID (--zone-id)", "%q is under a reserved name (.%s), which no public zone serves and no certificate authority issues for: set ROUTE53_DOMAIN (--domain) to the domain of zone %s, or leave ROUTE53_ZONE_ID unset", d, ReservedDomain(d)+PrivateUseName(d), c.Route53ZoneID)
		case c.PrivateZone():
			bad("ROUTE53_ZONE_ID (--zone-id)", "an existing zone is used only for a public domain, and ROUTE53_ZONE is %s: leave ROUTE53_ZONE unset (or %s) with ROUTE53_ZONE_ID, or leave ROUTE53_ZONE_ID unset for a private zone the stack creates", ZonePrivate, ZonePublic)
		}
	}
	if !classPattern().MatchString(c.DBInstanceClass) {
		bad("--db-instance-class", "%q is not an RDS instance class such as db.r5.large", c.DBInstanceClass)
	}
	if c.DBPasswordVersion < 1 {
		bad("--db-password-version", "must be 1 or more, got %d", c.DBPasswordVersion)
	}
	if c.DBAppPasswordVersion < 1 {
		bad("--db-app-password-version", "must be 1 or more, got %d", c.DBAppPasswordVersion)
	}
	if c.APIKeyVersion < 1 {
		bad("--api-key-version", "must be 1 or more, got %d", c.APIKeyVersion)
	}
	if !enginePattern().MatchString(c.DBEngineVersion) {
		bad("--db-engine-version", "%q is not an Aurora PostgreSQL version such as 15.8 (its major version names the parameter group family)", c.DBEngineVersion)
	}
	if c.RPOBoundSeconds < MinRPOBoundSeconds || c.RPOBoundSeconds > math.MaxInt32 {
		bad("--rpo-bound-seconds", "Aurora's rds.global_db_rpo takes %d to %d seconds, got %d (default %d: the mission's five minutes)", MinRPOBoundSeconds, math.MaxInt32, c.RPOBoundSeconds, DefaultRPOBoundSeconds)
	}
	if c.HealthCheckInterval != 10 && c.HealthCheckInterval != 30 {
		bad("--health-check-interval", "Route 53 allows 10 or 30 seconds, got %d", c.HealthCheckInterval)
	}
	if c.HealthCheckFailureThreshold < 1 || c.HealthCheckFailureThreshold > 10 {
		bad("--health-check-failure-threshold", "Route 53 allows 1 to 10, got %d", c.HealthCheckFailureThreshold)
	}
	switch c.Target {
	case TargetAWS:
	case TargetLocal:
		if u, err := url.Parse(c.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			bad("--endpoint", "the local target needs the emulator's URL, such as http://127.0.0.1:5000; got %q", c.Endpoint)
		}
		if !c.PrivateZone() || c.Route53ZoneID != "" {
			bad("ROUTE53_DOMAIN (--domain)", "the local target takes only a private zone (the default migration-<suffix>.internal), not the public %s: moto 5.2's API Gateway custom domains have no regional target for the failover alias records, and its ACM certificates stay pending for a minute; leave ROUTE53_DOMAIN, ROUTE53_ZONE and ROUTE53_ZONE_ID unset with --target local", c.Domain())
		}
	default:
		bad("--target", "%q is not a target: use aws or local", c.Target)
	}
	if c.ProcessorZip == "" || strings.HasPrefix(c.ProcessorZip, "/") || strings.Contains(c.ProcessorZip, "..") {
		bad("ProcessorZip", "%q must be a path inside the stack directory", c.ProcessorZip)
	}
	return errors.Join(errs...)
}
