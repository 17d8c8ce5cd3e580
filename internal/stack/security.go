package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// postgresPort is where Aurora PostgreSQL listens.
const postgresPort = 5432

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
		aws.NewVPCSecurityGroupEgressRule(sc, id+"_processor_https", aws.VPCSecurityGroupEgressRuleArgs{
			SecurityGroupID: r.sgProcessor.ID(),
			CIDRIPv4:        tf.S("0.0.0.0/0"),
			IPProtocol:      tf.S("tcp"),
			FromPort:        tf.N(443),
			ToPort:          tf.N(443),
			Description:     tf.S("HTTPS to AWS APIs (DynamoDB, EventBridge, Secrets Manager, SSM)"),
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
			SecurityGroupID: r.sgDMS.ID(),
			CIDRIPv4:        tf.S("0.0.0.0/0"),
			IPProtocol:      tf.S("tcp"),
			FromPort:        tf.N(443),
			ToPort:          tf.N(443),
			Description:     tf.S("HTTPS to AWS APIs"),
		})
	}
}
