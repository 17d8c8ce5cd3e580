package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// migration declares DMS in the primary region (on by default): a
// replication subnet group over the private subnets and a replication
// instance that is not publicly accessible, lets AWS choose the engine
// version (a pinned one that does not exist fails at apply time) and takes
// minor upgrades. DMS needs dms-vpc-role, which is one per account: it is
// created only when Config.DMSCreateVPCRole opts in (see there), and
// otherwise a note says what the account must have. The local target
// leaves DMS out (see [LocalGaps]).
func (b *builder) migration() {
	if !b.cfg.EnableDMS {
		return
	}
	if b.local() {
		b.note("local: DMS left out (moto returns a timestamp the SDK cannot parse for the instance, and its subnet group held a re-apply for minutes)")
		return
	}
	p := b.primary
	var deps []*aws.IAMRolePolicyAttachment
	if b.cfg.DMSCreateVPCRole {
		role := aws.NewIAMRole(p.scope, "dms_vpc", aws.IAMRoleArgs{
			// AWS looks the role up by this exact name.
			Name:             tf.S("dms-vpc-role"),
			AssumeRolePolicy: b.serviceTrust("dms.amazonaws.com", tf.String{}),
		})
		deps = append(deps, aws.NewIAMRolePolicyAttachment(p.scope, "dms_vpc", aws.IAMRolePolicyAttachmentArgs{
			Role:      role.Name(),
			PolicyARN: tf.Sprintf("arn:%s:iam::aws:policy/service-role/AmazonDMSVPCManagementRole", b.partition.Partition()),
		}))
	} else if !b.local() {
		b.note("dms: the stack does not create dms-vpc-role (one per account, so creating it collides with EntityAlreadyExists where it exists); the account must have it, with the AmazonDMSVPCManagementRole policy, or the DMS subnet group fails to create: opt in with --dms-create-vpc-role in one stack per account, or leave DMS out with --no-dms")
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
