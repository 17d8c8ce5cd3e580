package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// Session table key design, shared with paydr/internal/sessions: partition key
// pk and sort key sk (strings), TTL in expires_at (epoch seconds).
const (
	sessionsHashKey = "pk"
	sessionsSortKey = "sk"
	sessionsTTL     = "expires_at"
)

// sessions declares the DynamoDB global table for payment sessions and cached
// idempotent responses: on demand, point-in-time recovery, KMS encryption,
// streams (global tables need NEW_AND_OLD_IMAGES), TTL, deletion protection,
// and a replica in the secondary region with its own key and PITR.
//
// The local target cannot create the replica (see [LocalGaps]); it declares
// a separate table of the same name in the secondary region instead, so each
// region's processor has its table.
func (b *builder) sessions() {
	p, s := b.primary, b.secondary
	name := b.name("payment-sessions")
	args := func(r *region) aws.DynamoDBTableArgs {
		return aws.DynamoDBTableArgs{
			Name:                      tf.S(name),
			BillingMode:               tf.S("PAY_PER_REQUEST"),
			HashKey:                   tf.S(sessionsHashKey),
			RangeKey:                  tf.S(sessionsSortKey),
			Attribute:                 []aws.DynamoDBTableAttribute{{Name: tf.S(sessionsHashKey), Type: tf.S("S")}, {Name: tf.S(sessionsSortKey), Type: tf.S("S")}},
			PointInTimeRecovery:       &aws.DynamoDBTablePointInTimeRecovery{Enabled: tf.B(true)},
			ServerSideEncryption:      &aws.DynamoDBTableServerSideEncryption{Enabled: tf.B(true), KMSKeyARN: r.kmsKeyARN},
			StreamEnabled:             tf.B(true),
			StreamViewType:            tf.S("NEW_AND_OLD_IMAGES"),
			TTL:                       &aws.DynamoDBTableTTL{AttributeName: tf.S(sessionsTTL), Enabled: tf.B(true)},
			DeletionProtectionEnabled: tf.B(b.cfg.Production()),
			Tags:                      b.tags(name),
		}
	}
	primaryArgs := args(p)
	if b.local() {
		b.table = aws.NewDynamoDBTable(p.scope, "sessions", primaryArgs)
		aws.NewDynamoDBTable(s.scope, "sessions_secondary", args(s))
		b.note("local: %s in %s is its own table, not a replica (moto ignores replica updates)", name, s.name)
	} else {
		primaryArgs.Replica = []aws.DynamoDBTableReplica{{
			RegionName:          tf.S(s.name),
			KMSKeyARN:           s.kmsKeyARN,
			PointInTimeRecovery: tf.B(true),
			PropagateTags:       tf.B(true),
		}}
		b.table = aws.NewDynamoDBTable(p.scope, "sessions", primaryArgs)
	}
	p.tableARN = b.table.ARN()
	s.tableARN = b.arn("dynamodb", s.name, "table/"+name)
}
