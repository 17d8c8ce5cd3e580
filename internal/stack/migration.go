package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// migration declares DMS in the primary region (on by default): a
// replication subnet group over the private subnets and a replication
// instance that is not publicly accessible, lets AWS choose the engine
// version (a pinned one that does not exist fails at apply time) and takes
// minor upgrades. DMS needs the account-wide dms-vpc-role; it is created
// unless the config says the account has it. The local target leaves the
// instance out (see [LocalGaps]).
func (b *builder) migration() {
	if !b.cfg.EnableDMS {
		return
	}
	p := b.primary
	var deps []*aws.IAMRolePolicyAttachment
	if b.cfg.DMSCreateVPCRole {
		role := aws.NewIAMRole(p.scope, "dms_vpc", aws.IAMRoleArgs{
			// AWS looks the role up by this exact name.
			Name:             tf.S("dms-vpc-role"),
			AssumeRolePolicy: assumeRolePolicy("dms.amazonaws.com"),
		})
		deps = append(deps, aws.NewIAMRolePolicyAttachment(p.scope, "dms_vpc", aws.IAMRolePolicyAttachmentArgs{
			Role:      role.Name(),
			PolicyARN: tf.Sprintf("arn:%s:iam::aws:policy/service-role/AmazonDMSVPCManagementRole", b.partition.Partition()),
		}))
	}
	name := b.name("payment-dms")
	group := aws.NewDMSReplicationSubnetGroup(p.scope, "main", aws.DMSReplicationSubnetGroupArgs{
		ReplicationSubnetGroupID:          tf.S(name),
		ReplicationSubnetGroupDescription: tf.S("private subnets for DMS"),
		SubnetIDs:                         subnetIDs(p.private),
		Tags:                              b.tags(name),
	})
	for _, d := range deps {
		group.DependsOn(d)
	}
	if b.local() {
		b.note("local: aws_dms_replication_instance left out (moto returns a timestamp the SDK cannot parse)")
		return
	}
	aws.NewDMSReplicationInstance(p.scope, "main", aws.DMSReplicationInstanceArgs{
		ReplicationInstanceID:    tf.S(name),
		ReplicationInstanceClass: tf.S("dms.t3.medium"),
		AllocatedStorage:         tf.N(50),
		PubliclyAccessible:       tf.B(false),
		AutoMinorVersionUpgrade:  tf.B(true),
		MultiAZ:                  tf.B(false),
		KMSKeyARN:                p.kmsKeyARN,
		ReplicationSubnetGroupID: group.ReplicationSubnetGroupID(),
		VPCSecurityGroupIDs:      tf.SetOf(p.sgDMS.ID()),
		Tags:                     b.tags(name),
	})
}
