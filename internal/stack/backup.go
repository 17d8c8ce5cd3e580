package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// backupRetentionDays is how long backups and their cross-region copies live.
const backupRetentionDays = 7

// backup declares a KMS-encrypted vault per region, a daily plan in the
// primary region whose rule copies every recovery point to the secondary
// vault, both kept 7 days, and a selection covering the Aurora cluster and
// the session table, with the role AWS Backup assumes. The local target
// leaves the selection out (see [LocalGaps]).
func (b *builder) backup() {
	p, s := b.primary, b.secondary
	for _, r := range b.regions() {
		name := b.name("payment-backup-" + string(r.role))
		r.vault = aws.NewBackupVault(r.scope, string(r.role), aws.BackupVaultArgs{
			Name:         tf.S(name),
			KMSKeyARN:    r.kmsKeyARN,
			ForceDestroy: tf.B(!b.cfg.Production()),
			Tags:         b.tags(name),
		})
	}
	planName := b.name("payment-backup-plan")
	b.backupPlan = aws.NewBackupPlan(p.scope, "daily", aws.BackupPlanArgs{
		Name: tf.S(planName),
		Rule: []aws.BackupPlanRule{{
			RuleName:         tf.S("daily"),
			TargetVaultName:  p.vault.Name(),
			Schedule:         tf.S("cron(0 5 * * ? *)"),
			StartWindow:      tf.N(60),
			CompletionWindow: tf.N(360),
			Lifecycle:        &aws.BackupPlanRuleLifecycle{DeleteAfter: tf.N(backupRetentionDays)},
			CopyAction: []aws.BackupPlanRuleCopyAction{{
				DestinationVaultARN: s.vault.ARN(),
				Lifecycle:           &aws.BackupPlanRuleCopyActionLifecycle{DeleteAfter: tf.N(backupRetentionDays)},
			}},
		}},
		Tags: b.tags(planName),
	})
	roleName := b.name("payment-backup")
	role := aws.NewIAMRole(p.scope, "backup", aws.IAMRoleArgs{
		Name:             tf.S(roleName),
		AssumeRolePolicy: b.serviceTrust("backup.amazonaws.com", tf.String{}),
		Tags:             b.tags(roleName),
	})
	for _, managed := range []string{"AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores"} {
		aws.NewIAMRolePolicyAttachment(p.scope, "backup_"+managed, aws.IAMRolePolicyAttachmentArgs{
			Role:      role.Name(),
			PolicyARN: tf.Sprintf("arn:%s:iam::aws:policy/service-role/"+managed, b.partition.Partition()),
		})
	}
	if b.local() {
		b.note("local: aws_backup_selection left out (moto does not implement CreateBackupSelection)")
		return
	}
	aws.NewBackupSelection(p.scope, "ledger", aws.BackupSelectionArgs{
		Name:       tf.S(b.name("payment-ledger")),
		PlanID:     b.backupPlan.ID(),
		IAMRoleARN: role.ARN(),
		Resources:  tf.SetOf(p.cluster.ARN(), b.table.ARN()),
	})
}
