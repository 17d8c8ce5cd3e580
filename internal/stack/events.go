package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// Event identity, shared with paydr/internal/events.
const (
	eventSource     = "paydr.payments"
	eventDetailType = "PaymentProcessed"
)

// events declares an EventBridge bus per region and, on each, a rule that
// forwards payment events that originated in that region to the other
// region's bus, through a role allowed to put events on exactly that bus.
// The rule matches detail.origin_region, which forwarding keeps, so an event
// that arrives from the other region never matches and is never sent back.
func (b *builder) events() {
	for _, r := range b.regions() {
		name := b.name("payment-events")
		r.bus = aws.NewCloudWatchEventBus(r.scope, string(r.role), aws.CloudWatchEventBusArgs{
			Name: tf.S(name),
			Tags: b.tags(name),
		})
	}
	for _, pair := range [][2]*region{{b.primary, b.secondary}, {b.secondary, b.primary}} {
		from, to := pair[0], pair[1]
		id := string(from.role)
		ruleName := b.name("payment-events-to-" + string(to.role))
		rule := aws.NewCloudWatchEventRule(from.scope, "forward_"+id, aws.CloudWatchEventRuleArgs{
			Name:         tf.S(ruleName),
			Description:  tf.S("forward payment events that originated in " + from.name + " to " + to.name),
			EventBusName: from.bus.Name(),
			EventPattern: tf.JSONEncode(tf.Raw(tf.Obj{
				"source":      []string{eventSource},
				"detail-type": []string{eventDetailType},
				"detail":      tf.Obj{"origin_region": []string{from.name}},
			})),
			Tags: b.tags(ruleName),
		})
		// The role EventBridge assumes for this rule only.
		roleName := b.name("payment-events-forward-" + id)
		role := aws.NewIAMRole(from.scope, "events_forward_"+id, aws.IAMRoleArgs{
			Name:             tf.S(roleName),
			AssumeRolePolicy: b.serviceTrust("events.amazonaws.com", rule.ARN()),
			Tags:             b.tags(roleName),
		})
		aws.NewIAMRolePolicy(from.scope, "events_forward_"+id, aws.IAMRolePolicyArgs{
			Name:   tf.S("put-events-on-" + string(to.role)),
			Role:   role.ID(),
			Policy: policy(statement([]string{"events:PutEvents"}, to.bus.ARN())),
		})
		aws.NewCloudWatchEventTarget(from.scope, "forward_"+id, aws.CloudWatchEventTargetArgs{
			Rule:         rule.Name(),
			EventBusName: from.bus.Name(),
			TargetID:     tf.S("other-region-bus"),
			ARN:          to.bus.ARN(),
			RoleARN:      role.ARN(),
		})
	}
}
