package stack

import (
	"strings"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// failoverTTL is the TTL of the failover records: clients re-resolve within a
// minute of a failover.
const failoverTTL = 60

// dns declares the hosted zone, an HTTPS health check of each region's
// /health, and PRIMARY and SECONDARY failover records on one name. /health
// answers 200 only where the database accepts writes, so Route 53 sends
// traffic to the writer's region. A health check that fails raises an alarm
// (Route 53 publishes health-check metrics only in us-east-1).
func (b *builder) dns() {
	p := b.primary
	domain := b.cfg.Domain()
	b.zone = aws.NewRoute53Zone(p.scope, "main", aws.Route53ZoneArgs{
		Name:         tf.S(domain),
		Comment:      tf.S("paydr " + b.cfg.EnvironmentSuffix + " payments failover"),
		ForceDestroy: tf.B(!b.cfg.Production()),
		Tags:         b.tags(domain),
	})
	b.failoverName = "api." + domain
	for _, r := range b.regions() {
		id := string(r.role)
		r.healthCheck = aws.NewRoute53HealthCheck(p.scope, id, aws.Route53HealthCheckArgs{
			Type:             tf.S("HTTPS"),
			FQDN:             r.apiHost,
			Port:             tf.N(443),
			ResourcePath:     tf.S("/health"),
			RequestInterval:  tf.N(b.cfg.HealthCheckInterval),
			FailureThreshold: tf.N(b.cfg.HealthCheckFailureThreshold),
			MeasureLatency:   tf.B(true),
			Tags:             b.tags(b.name("payment-health-" + id)),
		})
		aws.NewRoute53Record(p.scope, "api_"+id, aws.Route53RecordArgs{
			ZoneID:                b.zone.ZoneID(),
			Name:                  tf.S(b.failoverName),
			Type:                  tf.S("CNAME"),
			TTL:                   tf.N(failoverTTL),
			Records:               tf.SetOf(r.apiHost),
			SetIdentifier:         tf.S(id),
			HealthCheckID:         r.healthCheck.ID(),
			FailoverRoutingPolicy: &aws.Route53RecordFailoverRoutingPolicy{Type: tf.S(strings.ToUpper(id))},
		})
	}
}
