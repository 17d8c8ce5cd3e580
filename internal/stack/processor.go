package stack

import (
	"paydr/internal/apikey"
	"paydr/internal/bundle/rdsca"
	"paydr/internal/processor/environ"
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// Processor sizing, fixed by the platform's design.
const (
	processorMemoryMB   = 1024
	processorTimeoutSec = 30
	processorRuntime    = "provided.al2023"
	processorArch       = "arm64"
	logRetentionDays    = 30
)

// processor declares the payment processor in each region: a Go Lambda
// (provided.al2023, arm64, 1024 MB) in the private subnets with X-Ray
// tracing and its log group, a role with least-privilege access to exactly
// its table, the application role's secret (never the master user's),
// event bus and API key parameter (the operations its
// code calls, checked by TestRolesGrantWhatTheCodeCalls), and an API
// Gateway HTTP API with POST /payments and GET /health.
//
// The API has no authorizer: the processor checks the API key itself
// (Authorization: Bearer, against the region's /paydr/<suffix>/api/key), so
// both regions, and the local server, accept the same credential the same
// way. IAM (SigV4) would not do: a signature is scoped to one region, so a
// failover would be visible to every client; a JWT authorizer needs an
// issuer both regions reach.
//
// The package is the zip built from this repository's processor
// (paydr/internal/bundle), beside the synthesized configuration;
// source_code_hash follows the file, so a new build deploys and an unchanged
// one does not.
//
// Reserved concurrency belongs to DR, not to the stack: a fence sets it to
// 0, and the functions ignore changes to it, so an ordinary apply after a
// fence keeps the region fenced.
func (b *builder) processor() {
	zip := tf.ModulePath(b.cfg.ProcessorZip)
	for _, r := range b.regions() {
		sc := r.scope
		id := string(r.role)
		r.functionName = b.name("payment-processor")
		logGroupName := "/aws/lambda/" + r.functionName
		r.functionLogGroup = aws.NewCloudWatchLogGroup(sc, id+"_processor", aws.CloudWatchLogGroupArgs{
			Name:            tf.S(logGroupName),
			RetentionInDays: tf.N(logRetentionDays),
			KMSKeyID:        r.kmsKeyARN,
			Tags:            b.tags(logGroupName),
		})
		r.processorRoleName = b.name("payment-processor-" + r.name)
		role := aws.NewIAMRole(sc, id+"_processor", aws.IAMRoleArgs{
			Name:             tf.S(r.processorRoleName),
			AssumeRolePolicy: b.serviceTrust("lambda.amazonaws.com", tf.String{}),
			Tags:             b.tags(r.processorRoleName),
		})
		r.processorRole = role
		// ENIs in the VPC; the managed policy is the documented minimum.
		aws.NewIAMRolePolicyAttachment(sc, id+"_processor_vpc", aws.IAMRolePolicyAttachmentArgs{
			Role:      role.Name(),
			PolicyARN: tf.Sprintf("arn:%s:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole", b.partition.Partition()),
		})
		secretARN := b.regionalSecretARN(b.dbAppSecret, r)
		keyParam := apikey.ParameterName(b.cfg.EnvironmentSuffix)
		aws.NewIAMRolePolicy(sc, id+"_processor", aws.IAMRolePolicyArgs{
			Name: tf.S("payment-processor"),
			Role: role.ID(),
			Policy: policy(
				// What paydr/internal/sessions calls: Save is PutItem or
				// BatchWriteItem, Lookup GetItem, SessionPayments Query, Ping
				// DescribeTable.
				stmt{sid: "Sessions", actions: []string{
					"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:DescribeTable",
				}, resources: []tf.String{r.tableARN}},
				stmt{sid: "Secret", actions: []string{"secretsmanager:GetSecretValue"}, resources: []tf.String{secretARN}},
				// The API key, read with decryption in this region only
				// (paydr/internal/apikey/ssmkey.Read).
				stmt{sid: "APIKey", actions: []string{"ssm:GetParameter"}, resources: []tf.String{b.arn("ssm", r.name, "parameter"+keyParam)}},
				stmt{sid: "Events", actions: []string{"events:PutEvents"}, resources: []tf.String{r.bus.ARN()}},
				// The table, the secret and the API key parameter are
				// encrypted with paydr's key: DynamoDB, Secrets Manager and
				// SSM use it with the caller's permission (kms:ViaService).
				stmt{sid: "Decrypt", actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, resources: []tf.String{r.kmsKeyARN}},
				stmt{sid: "Logs", actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"},
					resources: []tf.String{tf.Join(r.functionLogGroup.ARN(), tf.S(":*"))}},
				// X-Ray has no resource-level permissions.
				stmt{sid: "Tracing", actions: []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, resources: []tf.String{tf.S("*")}},
			),
		})
		r.function = aws.NewLambdaFunction(sc, id+"_processor", aws.LambdaFunctionArgs{
			FunctionName:   tf.S(r.functionName),
			Description:    tf.S("paydr payment processor (" + id + " region)"),
			Role:           role.ARN(),
			Runtime:        tf.S(processorRuntime),
			Architectures:  tf.Strings(processorArch),
			Handler:        tf.S("bootstrap"),
			MemorySize:     tf.N(processorMemoryMB),
			Timeout:        tf.N(processorTimeoutSec),
			Filename:       zip,
			SourceCodeHash: tf.FileBase64SHA256(zip),
			VPCConfig: &aws.LambdaFunctionVPCConfig{
				SubnetIDs:        subnetIDs(r.private),
				SecurityGroupIDs: tf.SetOf(r.sgProcessor.ID()),
			},
			TracingConfig: &aws.LambdaFunctionTracingConfig{Mode: tf.S("Active")},
			LoggingConfig: &aws.LambdaFunctionLoggingConfig{LogFormat: tf.S("JSON"), LogGroup: r.functionLogGroup.Name()},
			Environment: &aws.LambdaFunctionEnvironment{Variables: tf.M(environ.Vars[tf.String]{
				Region:        tf.S(r.name),
				SessionsTable: b.table.Name(),
				EventBus:      r.bus.Name(),
				DBHost:        b.global.Endpoint(),
				DBHealthHost:  r.cluster.Endpoint(),
				DBPort:        tf.S("5432"),
				DBName:        tf.S(dbName),
				DBSecretARN:   secretARN,
				// The RDS CA bundle the package carries
				// (paydr/internal/bundle): verify-full against the
				// instances' rds-ca-rsa2048-g1 certificates.
				DBCAFile:    tf.S(rdsca.LambdaPath),
				APIKeyParam: tf.S(keyParam),
			}.Map())},
			Tags: b.tags(r.functionName),
		})
		r.function.DependsOn(r.functionLogGroup)
		if b.provisioned != nil {
			// New code comes after the schema it needs: the provisioning
			// runs again for every new package (provisioning.go).
			r.function.DependsOn(b.provisioned)
		}
		r.function.Lifecycle(tf.Lifecycle{
			// DR fences a region with PutFunctionConcurrency(0). The stack
			// leaves the setting unset (-1), so an apply that managed it
			// would lift the fence with DeleteFunctionConcurrency.
			IgnoreChanges: []string{"reserved_concurrent_executions"},
		})

		b.httpAPI(r, role)
		b.outboxSchedule(r)
	}
}

// outboxSchedule invokes the processor every minute with EventBridge's
// scheduled event, on the default bus (the only one schedules run on).
// Each run publishes the PaymentProcessed events a crash or an event-bus
// outage left unpublished in the ledger (the payments table is the
// outbox). Both regions run it; the ledger hands each pending event to one
// sweeper at a time, and a fenced region's runs are throttled away.
func (b *builder) outboxSchedule(r *region) {
	id := string(r.role)
	name := b.name("payment-outbox-sweep-" + id)
	rule := aws.NewCloudWatchEventRule(r.scope, "outbox_"+id, aws.CloudWatchEventRuleArgs{
		Name:               tf.S(name),
		Description:        tf.S("publish payment events left in the ledger's outbox (" + r.name + ")"),
		ScheduleExpression: tf.S("rate(1 minute)"),
		Tags:               b.tags(name),
	})
	aws.NewCloudWatchEventTarget(r.scope, "outbox_"+id, aws.CloudWatchEventTargetArgs{
		Rule:     rule.Name(),
		TargetID: tf.S("payment-processor"),
		ARN:      r.function.ARN(),
	})
	aws.NewLambdaPermission(r.scope, id+"_outbox", aws.LambdaPermissionArgs{
		StatementID:  tf.S("AllowOutboxSchedule"),
		Action:       tf.S("lambda:InvokeFunction"),
		FunctionName: r.function.FunctionName(),
		Principal:    tf.S("events.amazonaws.com"),
		SourceARN:    rule.ARN(),
	})
}

// regionalSecretARN is a secret's ARN in r: the secret itself in the
// primary region, its replica (same name, other region) in the secondary,
// so the standby reads credentials without the primary region.
func (b *builder) regionalSecretARN(secret *aws.SecretsManagerSecret, r *region) tf.String {
	if r.role == primary {
		return secret.ARN()
	}
	return tf.Call[tf.String]("replace", secret.ARN(), tf.S(":"+b.primary.name+":"), tf.S(":"+r.name+":"))
}

// httpAPI exposes the processor over HTTPS with an API Gateway HTTP API:
// stage throttling protects the ledger from retry storms during a failover,
// access logs record every request. Where the zone is public, dns adds a
// custom domain mapped to its stage.
func (b *builder) httpAPI(r *region, _ *aws.IAMRole) {
	sc := r.scope
	id := string(r.role)
	name := b.name("payment-api")
	r.api = aws.NewAPIGatewayV2API(sc, id, aws.APIGatewayV2APIArgs{
		Name:         tf.S(name),
		ProtocolType: tf.S("HTTP"),
		Description:  tf.S("paydr payments API (" + id + " region)"),
		Tags:         b.tags(name),
	})
	integration := aws.NewAPIGatewayV2Integration(sc, id, aws.APIGatewayV2IntegrationArgs{
		APIID:                r.api.ID(),
		IntegrationType:      tf.S("AWS_PROXY"),
		IntegrationURI:       r.function.InvokeARN(),
		PayloadFormatVersion: tf.S("2.0"),
		TimeoutMilliseconds:  tf.N(29000),
	})
	for _, route := range []struct{ id, key string }{{"payments", "POST /payments"}, {"health", "GET /health"}} {
		aws.NewAPIGatewayV2Route(sc, id+"_"+route.id, aws.APIGatewayV2RouteArgs{
			APIID:    r.api.ID(),
			RouteKey: tf.S(route.key),
			Target:   tf.Join(tf.S("integrations/"), integration.ID()),
		})
	}
	accessLogs := aws.NewCloudWatchLogGroup(sc, id+"_api_access", aws.CloudWatchLogGroupArgs{
		Name:            tf.S("/paydr/" + b.cfg.EnvironmentSuffix + "/api-access/" + id),
		RetentionInDays: tf.N(logRetentionDays),
		KMSKeyID:        r.kmsKeyARN,
	})
	r.stage = aws.NewAPIGatewayV2Stage(sc, id, aws.APIGatewayV2StageArgs{
		APIID:      r.api.ID(),
		Name:       tf.S("$default"),
		AutoDeploy: tf.B(true),
		DefaultRouteSettings: &aws.APIGatewayV2StageDefaultRouteSettings{
			ThrottlingBurstLimit: tf.N(500),
			ThrottlingRateLimit:  tf.N(1000),
		},
		AccessLogSettings: &aws.APIGatewayV2StageAccessLogSettings{
			DestinationARN: accessLogs.ARN(),
			Format: tf.JSONEncode(tf.Raw(tf.Obj{
				"requestId": "$context.requestId", "routeKey": "$context.routeKey", "status": "$context.status",
				"latency": "$context.integrationLatency", "ip": "$context.identity.sourceIp",
			})),
		},
		Tags: b.tags(name),
	})
	aws.NewLambdaPermission(sc, id+"_api", aws.LambdaPermissionArgs{
		StatementID:  tf.S("AllowHTTPAPI"),
		Action:       tf.S("lambda:InvokeFunction"),
		FunctionName: r.function.FunctionName(),
		Principal:    tf.S("apigateway.amazonaws.com"),
		SourceARN:    tf.Join(r.api.ExecutionARN(), tf.S("/*/*")),
	})
	r.apiHost = tf.Call[tf.String]("replace", r.api.APIEndpoint(), tf.S("https://"), tf.S(""))
}
