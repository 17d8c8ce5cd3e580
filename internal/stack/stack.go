// Package stack defines paydr's two-region disaster-recovery stack: a
// payment platform whose writer lives in the primary region and whose standby
// takes over when that region is lost.
//
// [Build] declares every resource through the generated bindings in
// paydr/internal/tf/aws, one file per concern: network, security, database,
// sessions, processor, dns, events, backup, monitoring, params, iam,
// migration, outputs. [Preflight] then refuses, before anything is deployed,
// the mistakes AWS would refuse at apply time.
//
// The stack never encodes which region holds the writer: both Aurora
// clusters are declared symmetrically, and the fields that change with the
// role (global cluster membership, replication source) are ignored after
// creation, so a plan after a switchover or failover moves nothing back.
package stack

import (
	"fmt"
	"sort"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// Stack is a built DR stack.
type Stack struct {
	// TF is the Terraform configuration.
	TF *tf.Stack
	// Config is what it was built from.
	Config Config
	// Notes lists what the target leaves out or changes, for the user to see.
	Notes []string
}

// Synth renders the stack as Terraform JSON.
func (s *Stack) Synth() ([]byte, error) { return s.TF.Synth() }

// Resources counts the stack's resources (data sources and the like not
// included).
func (s *Stack) Resources() int {
	n := 0
	for _, o := range s.TF.Objects() {
		if o.Kind() == tf.KindResource {
			n++
		}
	}
	return n
}

// role names a region's part in the stack.
type role string

const (
	primary   role = "primary"
	secondary role = "secondary"
)

// region holds one region's handles, for references across concerns.
type region struct {
	role     role
	name     string
	index    int // 0 for primary, 1 for secondary: picks CIDRs
	provider *tf.Provider
	scope    tf.Scope

	vpc               *aws.VPC
	public, private   []*aws.Subnet
	privateRouteTable *aws.RouteTable
	sgProcessor, sgDB *aws.SecurityGroup
	sgDMS             *aws.SecurityGroup
	sgEndpoints       *aws.SecurityGroup
	dynamoEndpoint    *aws.VPCEndpoint // the gateway endpoint: its prefix list
	kmsKeyARN         tf.String
	dbSubnetGroup     *aws.DBSubnetGroup
	clusterParams     *aws.RDSClusterParameterGroup
	cluster           *aws.RDSCluster
	instances         []*aws.RDSClusterInstance
	tableARN          tf.String
	function          *aws.LambdaFunction
	functionLogGroup  *aws.CloudWatchLogGroup
	api               *aws.APIGatewayV2API
	stage             *aws.APIGatewayV2Stage
	apiHost           tf.String
	certificate       *aws.ACMCertificate         // public domain only
	customDomain      *aws.APIGatewayV2DomainName // public domain only
	recordTarget      tf.String                   // the custom domain's regional target; unset for a private zone
	bus               *aws.CloudWatchEventBus
	vault             *aws.BackupVault
	alarmTopic        *aws.SNSTopic
	healthCheck       *aws.Route53HealthCheck
	dashboard         *aws.CloudWatchDashboard
	params            map[string]*aws.SSMParameter
	processorRoleName string
	processorRole     *aws.IAMRole
	functionName      string
	clusterIdentifier string
	dashboardName     string
}

// builder carries what every concern needs while the stack is built.
type builder struct {
	cfg                Config
	s                  *tf.Stack
	notes              []string
	primary, secondary *region

	caller    *aws.DataCallerIdentity
	partition *aws.DataPartition

	global      *aws.RDSGlobalCluster
	dbSecret    *aws.SecretsManagerSecret
	dbAppSecret *aws.SecretsManagerSecret
	// dbSecretVersions are the writes of both secrets' values.
	dbSecretVersions []*aws.SecretsManagerSecretVersion
	// provisioned is the invocation of the provisioning function (nil in
	// the local target): the processors are deployed after it.
	provisioned  *aws.LambdaInvocation
	table        *aws.DynamoDBTable
	zone         *aws.Route53Zone // nil when the stack uses an existing zone (Route53ZoneID)
	zoneID       tf.String
	drRole       *aws.IAMRole
	backupPlan   *aws.BackupPlan
	failoverName string
}

// Build declares the stack for cfg and runs [Preflight] on it. An invalid
// configuration or a preflight finding is an error that names each problem.
func Build(cfg Config) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stack config: %w", err)
	}
	b := &builder{cfg: cfg, s: tf.NewStack(cfg.StackName())}
	b.terraform()
	b.encryption()
	b.network()
	b.security()
	b.database()
	b.provisioning()
	b.sessions()
	b.events()
	b.processor()
	b.dns()
	b.params()
	b.backup()
	b.monitoring()
	b.drAutomation()
	b.migration()
	b.outputs()
	st := &Stack{TF: b.s, Config: cfg, Notes: b.notes}
	if err := Preflight(b.s); err != nil {
		return st, err
	}
	return st, nil
}

// regions returns both regions, primary first.
func (b *builder) regions() []*region { return []*region{b.primary, b.secondary} }

// name returns a resource name ending in the environment suffix.
func (b *builder) name(base string) string { return base + "-" + b.cfg.EnvironmentSuffix }

// tags returns the tags of one resource: its Name, on top of the provider's
// default tags.
func (b *builder) tags(name string) tf.Map[tf.String] {
	return tf.StringMap(map[string]string{"Name": name})
}

// local reports whether the stack targets the emulator.
func (b *builder) local() bool { return b.cfg.Target == TargetLocal }

// note records something the user should see about this synthesis.
func (b *builder) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// terraform declares the terraform block, the providers of both regions and
// the account data sources.
func (b *builder) terraform() {
	c := b.cfg
	b.s.RequiredVersion(">= 1.11.0")
	if b.local() {
		path := c.LocalStatePath
		if path == "" {
			path = "terraform.tfstate"
		}
		b.s.SetBackend(tf.LocalBackend{Path: path})
		b.s.Comment(LocalComment(c.Endpoint))
	} else {
		b.s.SetBackend(tf.S3Backend{
			Bucket:        c.StateBucket,
			Key:           "tap/" + c.EnvironmentSuffix + "/terraform.tfstate",
			Region:        c.StateBucketRegion,
			Encrypt:       true,
			UseLockfile:   true,
			DynamoDBTable: c.StateLockTable,
		})
	}
	tags := map[string]string{
		"Environment": c.EnvironmentSuffix,
		"Repository":  c.Repository,
		"Author":      c.CommitAuthor,
		"PRNumber":    c.PRNumber,
		"Team":        c.Team,
	}
	if c.CreatedAt != "" {
		tags["CreatedAt"] = c.CreatedAt
	}
	mk := func(r role, name string, index int) *region {
		alias := ""
		if r == secondary {
			alias = "secondary"
		}
		args := aws.ProviderArgs{
			Region:      tf.S(name),
			DefaultTags: []aws.ProviderDefaultTags{{Tags: tf.StringMap(tags)}},
		}
		if b.local() {
			b.localProvider(&args)
		}
		p := aws.NewProvider(b.s, alias, args)
		return &region{role: r, name: name, index: index, provider: p, scope: b.s.In(p), params: map[string]*aws.SSMParameter{}}
	}
	b.primary = mk(primary, c.PrimaryRegion, 0)
	b.secondary = mk(secondary, c.SecondaryRegion, 1)
	b.caller = aws.NewDataCallerIdentity(b.primary.scope, "current", aws.DataCallerIdentityArgs{})
	b.partition = aws.NewDataPartition(b.primary.scope, "current", aws.DataPartitionArgs{})
}

// arn builds an ARN in this account: arn:<partition>:<service>:<region>:<account>:<resource>.
func (b *builder) arn(service, region, resource string) tf.String {
	return tf.Sprintf("arn:%s:"+service+":"+region+":%s:"+resource, b.partition.Partition(), b.caller.AccountID())
}

// EmulatorAccountID is the account the AWS API emulator (moto) answers as.
// The local target allows its providers no other, so its configuration
// can never act on a real AWS account.
const EmulatorAccountID = "123456789012"

// LocalComment is the local target's root comment: how its providers
// reach the emulator at endpoint.
func LocalComment(endpoint string) string {
	return "paydr local target: the providers reach the AWS API emulator at " + endpoint +
		" through AWS_ENDPOINT_URL, which paydr up sets on its Terraform runs (tfcli.EmulatorEnv), not through an endpoints block," +
		" whose validation costs each provider process seconds of CPU. To run Terraform here by hand: AWS_ENDPOINT_URL=" + endpoint +
		" AWS_CONFIG_FILE=/dev/null terraform plan. allowed_account_ids holds the providers to the emulator's account."
}

// localProvider sets the local target's provider arguments: the emulator's
// test credentials and account, and no endpoints block (see LocalComment).
func (b *builder) localProvider(args *aws.ProviderArgs) {
	args.AccessKey = tf.S("test")
	args.SecretKey = tf.S("test")
	args.AllowedAccountIDs = tf.SetOf(tf.S(EmulatorAccountID))
	args.SkipCredentialsValidation = tf.B(true)
	args.SkipMetadataAPICheck = tf.S("true")
	args.SkipRequestingAccountID = tf.B(false)
	args.S3UsePathStyle = tf.B(true)
}

// LocalGaps describes what the local target changes because the emulator
// (moto 5.2) cannot do it, one line each, sorted.
func LocalGaps() []string {
	gaps := []string{
		"dynamodb replica: moto ignores UpdateTable ReplicaUpdates and the provider would wait forever; locally each region gets its own payment-sessions table, not replicated",
		"backup selection: moto does not implement CreateBackupSelection (HTTP 500, retried without end); locally the vaults and the plan with its copy action are created, the selection is left out",
		"dms: moto returns a timestamp the SDK cannot parse for the replication instance, and in CI a re-apply (after moto's RouteAlreadyExists) waited on the replication subnet group for over 7 minutes; locally DMS is left out",
		"kms replica key: moto 5.2's ReplicateKey copies the primary key shallowly (shared aliases and multi-Region configuration, tags dropped); locally the secondary region gets its own aws_kms_key instead of a replica",
		"cloudwatch composite alarm: moto does not implement PutCompositeAlarm; locally the replication-stopped alarm (a composite) and its two components are left out, the lag threshold alarms stay",
		"route53 private zone: moto 5.2 makes a zone private only when CreateHostedZone sends HostedZoneConfig.PrivateZone, which the provider leaves to AWS to infer from the VPC, and then refuses to associate a second VPC (PublicZoneVPCAssociation); locally the zone names the primary region's VPC only (the router stands in for DNS)",
		"rds ca_cert_identifier: moto has no RDS certificate authorities, and the provider sets an instance's with a ModifyDBInstance whose wait made each instance take 3m11s instead of about 30 s against moto; locally the instances leave it out, and PostgreSQL serves a certificate of paydr up's own CA, which the processors verify the same way (verify-full)",
		"lambda invocation: moto cannot run Lambda code; locally the ledger's provisioning function is declared but aws_lambda_invocation is left out, and paydr up runs the same ledger.Provision itself (step provision) before the processors start",
		"aurora switchover/failover: moto does not implement SwitchoverGlobalCluster or FailoverGlobalCluster; locally the PostgreSQL primary and standby stand in for the clusters and DR operations act on them",
	}
	sort.Strings(gaps)
	return gaps
}
