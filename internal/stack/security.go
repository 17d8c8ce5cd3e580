package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// postgresPort is where Aurora PostgreSQL listens.
const postgresPort = 5432

// interfaceEndpoints are the AWS APIs the processor and DMS reach through
// interface endpoints in the private subnets (DynamoDB and S3 have gateway
// endpoints): events (PutEvents), ssm (the API key), secretsmanager (the
// database secret), kms (decrypting both), xray (active tracing sends
// segments from the function's network). With them, no security group
// allows egress to the internet.
var interfaceEndpoints = []string{"events", "ssm", "secretsmanager", "kms", "xray"}

// security declares, per region, the security groups of the processor, the
// database and DMS. PostgreSQL reaches the database only from the processor's
// and DMS's groups; every rule is its own resource with a description, so
// none is duplicated and each can be read on its own.
func (b *builder) security() {
	for _, r := range b.regions() {
		sc := r.scope
		id := string(r.role)
		sg := func(suffix, desc string) *aws.SecurityGroup {
			name := b.name("payment-" + suffix + "-" + id)
			return aws.NewSecurityGroup(sc, id+"_"+suffix, aws.SecurityGroupArgs{
				Name:        tf.S(name),
				Description: tf.S(desc),
				VPCID:       r.vpc.ID(),
				Tags:        b.tags(name),
			})
		}
		r.sgProcessor = sg("processor", "payment processor Lambda")
		r.sgDB = sg("aurora", "Aurora PostgreSQL: 5432 from the processor and DMS only")
		r.sgDMS = sg("dms", "DMS replication instance")
		r.sgEndpoints = sg("endpoints", "interface endpoints of AWS APIs: 443 from the processor and DMS only")

		aws.NewVPCSecurityGroupIngressRule(sc, id+"_aurora_from_processor", aws.VPCSecurityGroupIngressRuleArgs{
			SecurityGroupID:           r.sgDB.ID(),
			ReferencedSecurityGroupID: r.sgProcessor.ID(),
			IPProtocol:                tf.S("tcp"),
			FromPort:                  tf.N(postgresPort),
			ToPort:                    tf.N(postgresPort),
			Description:               tf.S("PostgreSQL from the payment processor"),
		})
		aws.NewVPCSecurityGroupIngressRule(sc, id+"_aurora_from_dms", aws.VPCSecurityGroupIngressRuleArgs{
			SecurityGroupID:           r.sgDB.ID(),
			ReferencedSecurityGroupID: r.sgDMS.ID(),
			IPProtocol:                tf.S("tcp"),
			FromPort:                  tf.N(postgresPort),
			ToPort:                    tf.N(postgresPort),
			Description:               tf.S("PostgreSQL from DMS"),
		})
		aws.NewVPCSecurityGroupEgressRule(sc, id+"_processor_to_aurora", aws.VPCSecurityGroupEgressRuleArgs{
			SecurityGroupID:           r.sgProcessor.ID(),
			ReferencedSecurityGroupID: r.sgDB.ID(),
			IPProtocol:                tf.S("tcp"),
			FromPort:                  tf.N(postgresPort),
			ToPort:                    tf.N(postgresPort),
			Description:               tf.S("PostgreSQL to Aurora"),
		})
		// The processor reaches AWS APIs only inside the VPC: DynamoDB
		// through its gateway endpoint (the prefix list), the others
		// through interface endpoints. No egress to the internet.
		aws.NewVPCSecurityGroupEgressRule(sc, id+"_processor_https", aws.VPCSecurityGroupEgressRuleArgs{
			SecurityGroupID:           r.sgProcessor.ID(),
			ReferencedSecurityGroupID: r.sgEndpoints.ID(),
			IPProtocol:                tf.S("tcp"),
			FromPort:                  tf.N(443),
			ToPort:                    tf.N(443),
			Description:               tf.S("HTTPS to the VPC's interface endpoints (EventBridge, Secrets Manager, SSM, KMS, X-Ray)"),
		})
		aws.NewVPCSecurityGroupEgressRule(sc, id+"_processor_dynamodb", aws.VPCSecurityGroupEgressRuleArgs{
			SecurityGroupID: r.sgProcessor.ID(),
			PrefixListID:    r.dynamoEndpoint.PrefixListID(),
			IPProtocol:      tf.S("tcp"),
			FromPort:        tf.N(443),
			ToPort:          tf.N(443),
			Description:     tf.S("HTTPS to DynamoDB through the gateway endpoint"),
		})
		aws.NewVPCSecurityGroupEgressRule(sc, id+"_dms_to_aurora", aws.VPCSecurityGroupEgressRuleArgs{
			SecurityGroupID:           r.sgDMS.ID(),
			ReferencedSecurityGroupID: r.sgDB.ID(),
			IPProtocol:                tf.S("tcp"),
			FromPort:                  tf.N(postgresPort),
			ToPort:                    tf.N(postgresPort),
			Description:               tf.S("PostgreSQL to Aurora"),
		})
		aws.NewVPCSecurityGroupEgressRule(sc, id+"_dms_https", aws.VPCSecurityGroupEgressRuleArgs{
			SecurityGroupID:           r.sgDMS.ID(),
			ReferencedSecurityGroupID: r.sgEndpoints.ID(),
			IPProtocol:                tf.S("tcp"),
			FromPort:                  tf.N(443),
			ToPort:                    tf.N(443),
			Description:               tf.S("HTTPS to the VPC's interface endpoints (Secrets Manager, KMS)"),
		})
		for _, from := range []struct {
			name string
			sg   *aws.SecurityGroup
		}{{"processor", r.sgProcessor}, {"dms", r.sgDMS}} {
			aws.NewVPCSecurityGroupIngressRule(sc, id+"_endpoints_from_"+from.name, aws.VPCSecurityGroupIngressRuleArgs{
				SecurityGroupID:           r.sgEndpoints.ID(),
				ReferencedSecurityGroupID: from.sg.ID(),
				IPProtocol:                tf.S("tcp"),
				FromPort:                  tf.N(443),
				ToPort:                    tf.N(443),
				Description:               tf.S("HTTPS from the " + from.name),
			})
		}
		for _, svc := range interfaceEndpoints {
			aws.NewVPCEndpoint(sc, id+"_"+svc, aws.VPCEndpointArgs{
				VPCID:             r.vpc.ID(),
				ServiceName:       tf.S("com.amazonaws." + r.name + "." + svc),
				VPCEndpointType:   tf.S("Interface"),
				PrivateDNSEnabled: tf.B(true),
				SubnetIDs:         subnetIDs(r.private),
				SecurityGroupIDs:  tf.SetOf(r.sgEndpoints.ID()),
				Tags:              b.tags(b.name("payment-" + svc + "-endpoint-" + id)),
			})
		}
	}
}
