package stack

import (
	"fmt"

	"paydr/internal/bundle/rdsca"
	"paydr/internal/processor/environ"
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// provisionerTimeoutSec bounds one provisioning run: migrations and the
// role, on a cold connection across the VPC.
const provisionerTimeoutSec = 120

// provisioning declares the ledger's provisioning function and its
// invocation at apply. The function is the processor's package run in
// another mode (PAYDR_MODE=provision, paydr/internal/provisioner), in the
// primary region's private subnets with the processor's security group
// (the one the database admits). As the master user, over verify-full TLS
// to the global writer endpoint, it applies the ledger's migrations and
// creates or updates the processors' role with the password in the
// application secret (paydr/internal/ledger.Provision). Its role may read
// exactly the two secrets (and decrypt them) and write its logs; it is the
// only principal of the stack that reads the master secret.
//
// aws_lambda_invocation runs it when it is created and again when a
// trigger changes: the application password's version (rotation) and the
// package's hash, which changes with any code, so with every migration
// (the migrations are embedded in the binary). The processors depend on
// it, so new code is deployed after the schema it needs. The input is a
// constant and the result names the role and the migrations: nothing
// secret is in state.
//
// The local target declares the function but not the invocation: moto
// cannot run Lambda code (see [LocalGaps]); paydr up provisions the local
// ledger itself with the same ledger.Provision.
func (b *builder) provisioning() {
	p := b.primary
	name := b.name("payment-db-provision")
	logGroup := aws.NewCloudWatchLogGroup(p.scope, "provisioner", aws.CloudWatchLogGroupArgs{
		Name:            tf.S("/aws/lambda/" + name),
		RetentionInDays: tf.N(logRetentionDays),
		KMSKeyID:        p.kmsKeyARN,
		Tags:            b.tags("/aws/lambda/" + name),
	})
	roleName := b.name("payment-db-provision-" + p.name)
	role := aws.NewIAMRole(p.scope, "provisioner", aws.IAMRoleArgs{
		Name:             tf.S(roleName),
		AssumeRolePolicy: b.serviceTrust("lambda.amazonaws.com", tf.String{}),
		Tags:             b.tags(roleName),
	})
	aws.NewIAMRolePolicyAttachment(p.scope, "provisioner_vpc", aws.IAMRolePolicyAttachmentArgs{
		Role:      role.Name(),
		PolicyARN: tf.Sprintf("arn:%s:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole", b.partition.Partition()),
	})
	aws.NewIAMRolePolicy(p.scope, "provisioner", aws.IAMRolePolicyArgs{
		Name: tf.S("payment-db-provision"),
		Role: role.ID(),
		Policy: policy(
			stmt{sid: "Secrets", actions: []string{"secretsmanager:GetSecretValue"}, resources: []tf.String{b.dbSecret.ARN(), b.dbAppSecret.ARN()}},
			// Secrets Manager decrypts both with paydr's key, with the
			// caller's permission.
			stmt{sid: "Decrypt", actions: []string{"kms:Decrypt"}, resources: []tf.String{p.kmsKeyARN}},
			stmt{sid: "Logs", actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"},
				resources: []tf.String{tf.Join(logGroup.ARN(), tf.S(":*"))}},
			// Active tracing, as the processor's (X-Ray has no resource-level
			// permissions).
			stmt{sid: "Tracing", actions: []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, resources: []tf.String{tf.S("*")}},
		),
	})
	zip := tf.ModulePath(b.cfg.ProcessorZip)
	fn := aws.NewLambdaFunction(p.scope, "provisioner", aws.LambdaFunctionArgs{
		FunctionName:   tf.S(name),
		Description:    tf.S("paydr ledger provisioning: migrations and the processors' database role, as the master user"),
		Role:           role.ARN(),
		Runtime:        tf.S(processorRuntime),
		Architectures:  tf.Strings(processorArch),
		Handler:        tf.S("bootstrap"),
		MemorySize:     tf.N(256),
		Timeout:        tf.N(provisionerTimeoutSec),
		Filename:       zip,
		SourceCodeHash: tf.FileBase64SHA256(zip),
		VPCConfig: &aws.LambdaFunctionVPCConfig{
			SubnetIDs:        subnetIDs(p.private),
			SecurityGroupIDs: tf.SetOf(p.sgProcessor.ID()),
		},
		LoggingConfig: &aws.LambdaFunctionLoggingConfig{LogFormat: tf.S("JSON"), LogGroup: logGroup.Name()},
		TracingConfig: &aws.LambdaFunctionTracingConfig{Mode: tf.S("Active")},
		Environment: &aws.LambdaFunctionEnvironment{Variables: tf.M(environ.Vars[tf.String]{
			Mode:              tf.S(environ.ModeProvision),
			Region:            tf.S(p.name),
			DBHost:            b.global.Endpoint(),
			DBPort:            tf.S("5432"),
			DBName:            tf.S(dbName),
			DBMasterSecretARN: b.dbSecret.ARN(),
			DBSecretARN:       b.dbAppSecret.ARN(),
			DBCAFile:          tf.S(rdsca.LambdaPath),
		}.Map())},
		Tags: b.tags(name),
	})
	fn.DependsOn(logGroup)
	if b.local() {
		b.note("local: the provisioning function %s is declared but not invoked (moto cannot run Lambda code); paydr up provisions the ledger with the same ledger.Provision", name)
		return
	}
	inv := aws.NewLambdaInvocation(p.scope, "provision_ledger", aws.LambdaInvocationArgs{
		FunctionName: fn.FunctionName(),
		Input:        tf.S(`{"paydr":"provision"}`),
		Triggers: tf.M(map[string]tf.String{
			"app_password_version": tf.S(fmt.Sprint(b.cfg.DBAppPasswordVersion)),
			"package":              tf.FileBase64SHA256(zip),
		}),
	})
	for _, v := range b.dbSecretVersions {
		inv.DependsOn(v)
	}
	for _, i := range p.instances {
		inv.DependsOn(i)
	}
	b.provisioned = inv
}
