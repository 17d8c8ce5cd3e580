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
// traffic to the writer's region (the no-healthy-region alarm says when
// neither answers).
//
// The zone is private, associated with both regions' VPCs, when the
// domain is under a name reserved for private use (the default
// migration-<suffix>.internal): such a name is never delegated, so a
// public zone for it would answer no one. Failover records with health
// checks work in a private zone; the checks are Route 53's, from outside
// the VPCs, against the public execute-api endpoints. A domain the user
// owns (ROUTE53_DOMAIN) gets a public zone.
func (b *builder) dns() {
	p, s := b.primary, b.secondary
	domain := b.cfg.Domain()
	args := aws.Route53ZoneArgs{
		Name:         tf.S(domain),
		Comment:      tf.S("paydr " + b.cfg.EnvironmentSuffix + " payments failover"),
		ForceDestroy: tf.B(!b.cfg.Production()),
		Tags:         b.tags(domain),
	}
	if b.cfg.PrivateZone() {
		vpcs := []*region{p, s}
		if b.local() {
			vpcs = vpcs[:1] // see [LocalGaps]
		}
		for _, r := range vpcs {
			args.VPC = append(args.VPC, aws.Route53ZoneVPC{VPCID: r.vpc.ID(), VPCRegion: tf.S(r.name)})
		}
		b.note("dns: %s is a private zone, answering only inside the stack's two VPCs; HTTPS through api.%s also needs an API Gateway custom domain with an ACM certificate, which no certificate authority issues for a reserved name: for clients outside the VPCs, set ROUTE53_DOMAIN to a domain you own", domain, domain)
	}
	b.zone = aws.NewRoute53Zone(p.scope, "main", args)
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
