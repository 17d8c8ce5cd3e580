package stack

import (
	"fmt"
	"strings"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// failoverTTL is the TTL of the failover CNAME records and of the
// certificate validation record: clients re-resolve within a minute of a
// failover. Alias records have no TTL of their own: Route 53 answers with
// the target's.
const failoverTTL = 60

// dns declares the hosted zone (or uses an existing one), an HTTPS health
// check of each region's /health, and PRIMARY and SECONDARY failover records
// on one name, api.<domain>. /health answers 200 only where the database
// accepts writes, so Route 53 sends traffic to the writer's region (the
// no-healthy-region alarm says when neither answers).
//
// The name comes in two shapes, chosen by the domain:
//
//   - Private (the default migration-<suffix>.internal, or any name reserved
//     for private use): a private zone associated with both regions' VPCs,
//     answering only inside them, and failover CNAMEs to each region's
//     execute-api host. Such a name is never delegated, and no certificate
//     authority issues for it, so HTTPS through it fails certificate
//     verification: it is a name for resolving inside the VPCs, and clients
//     call the execute-api hosts (or set a public ROUTE53_DOMAIN).
//   - Public (a domain the user owns, ROUTE53_DOMAIN, in a zone the stack
//     creates or the existing ROUTE53_ZONE_ID): see [builder.customDomain].
//
// Failover records with health checks work in either zone; the checks are
// Route 53's, from outside the VPCs, against the public execute-api
// endpoints.
func (b *builder) dns() {
	p := b.primary
	domain := b.cfg.Domain()
	b.failoverName = "api." + domain
	if b.cfg.Route53ZoneID != "" {
		b.zoneID = tf.S(b.cfg.Route53ZoneID)
	} else {
		args := aws.Route53ZoneArgs{
			Name:         tf.S(domain),
			Comment:      tf.S("paydr " + b.cfg.EnvironmentSuffix + " payments failover"),
			ForceDestroy: tf.B(!b.cfg.Production()),
			Tags:         b.tags(domain),
		}
		if b.cfg.PrivateZone() {
			vpcs := []*region{p, b.secondary}
			if b.local() {
				vpcs = vpcs[:1] // see [LocalGaps]
			}
			for _, r := range vpcs {
				args.VPC = append(args.VPC, aws.Route53ZoneVPC{VPCID: r.vpc.ID(), VPCRegion: tf.S(r.name)})
			}
		}
		b.zone = aws.NewRoute53Zone(p.scope, "main", args)
		b.zoneID = b.zone.ZoneID()
	}
	// Each health check probes its own region's execute-api host, never
	// the failover name: the name answers with whichever region is
	// healthy, so a check through it would judge that region, not its own,
	// and both checks would pass while one region is down. With a custom
	// domain (which needs no execute-api host), the execute-api endpoint
	// stays enabled for these checks.
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
	}
	if b.cfg.PrivateZone() {
		b.privateName(domain)
		return
	}
	b.customDomain(domain)
}

// privateName declares the failover CNAMEs of the private zone: api.<domain>
// answers with the healthy region's execute-api host, inside the VPCs.
func (b *builder) privateName(domain string) {
	b.note("dns: %s is a private zone: api.%s resolves only inside the stack's two VPCs, and HTTPS through it fails certificate verification, because no certificate authority issues for a name reserved for private use (so no API Gateway custom domain can serve it); clients call the regions' execute-api hosts (outputs primary_api_url, secondary_api_url), or set ROUTE53_DOMAIN to a domain you own for a public failover name with certificates", domain, domain)
	for _, r := range b.regions() {
		id := string(r.role)
		aws.NewRoute53Record(b.primary.scope, "api_"+id, aws.Route53RecordArgs{
			ZoneID:                b.zoneID,
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

// customDomain serves the failover name over HTTPS in a public zone: in each
// region an ACM certificate for api.<domain>, validated by DNS, and an API
// Gateway custom domain (regional, TLS 1.2) mapped to the region's API and
// stage; api.<domain> is a pair of failover alias records to the two
// regional custom domains, with the health checks. A client's TLS session
// then names api.<domain>, which both regions' certificates cover.
//
// ACM asks for the same validation CNAME (name and value) for one domain
// name in every region of an account, so a single record, from the primary
// region's certificate, validates both: each region's validation lists
// it, and the provider refuses at once (it does not wait) if a
// certificate asks for a record of another name. allow_overwrite takes
// over a record that is already there with that content (an earlier
// certificate for the same name in this account); destroying the stack
// removes it.
//
// The custom domains serve IPv4 only, as the APIs' execute-api endpoints
// do (ip_address_type ipv4), so the alias records are A records; with
// dualstack APIs, add AAAA aliases.
func (b *builder) customDomain(domain string) {
	p := b.primary
	where, delegate := "the existing zone "+b.cfg.Route53ZoneID, ""
	if b.zone != nil {
		where = "the zone " + domain + " the stack creates"
		delegate = "; delegate it while the apply waits: add its name servers (output hosted_zone_name_servers) as the NS records of " + domain + " at the parent zone or registrar"
	}
	b.note("dns: api.%s is served by an API Gateway custom domain in each region, with an ACM certificate validated in %s: the apply waits (up to 75 minutes, the provider's default) until both certificates are issued, which needs that zone to answer publicly for %s%s", domain, where, domain, delegate)
	for _, r := range b.regions() {
		r.certificate = aws.NewACMCertificate(r.scope, string(r.role), aws.ACMCertificateArgs{
			DomainName:       tf.S(b.failoverName),
			ValidationMethod: tf.S("DNS"),
			Tags:             b.tags(b.failoverName),
		})
		// A replacement certificate is issued and attached before the old
		// one, still attached to the custom domain, is deleted.
		r.certificate.Lifecycle(tf.Lifecycle{CreateBeforeDestroy: true})
	}
	option := func(attr string) tf.String {
		return tf.Expr[tf.String](fmt.Sprintf("tolist(%s.domain_validation_options)[0].%s", p.certificate.Addr(), attr))
	}
	validation := aws.NewRoute53Record(p.scope, "certificate_validation", aws.Route53RecordArgs{
		ZoneID:         b.zoneID,
		Name:           option("resource_record_name"),
		Type:           option("resource_record_type"),
		TTL:            tf.N(failoverTTL),
		Records:        tf.SetOf(option("resource_record_value")),
		AllowOverwrite: tf.B(true),
	})
	for _, r := range b.regions() {
		id := string(r.role)
		issued := aws.NewACMCertificateValidation(r.scope, id, aws.ACMCertificateValidationArgs{
			CertificateARN:        r.certificate.ARN(),
			ValidationRecordFqdns: tf.SetOf(validation.FQDN()),
		})
		r.customDomain = aws.NewAPIGatewayV2DomainName(r.scope, id, aws.APIGatewayV2DomainNameArgs{
			DomainName: tf.S(b.failoverName),
			DomainNameConfiguration: &aws.APIGatewayV2DomainNameDomainNameConfiguration{
				// The validation's ARN, so the domain waits for the issued certificate.
				CertificateARN: issued.CertificateARN(),
				EndpointType:   tf.S("REGIONAL"),
				SecurityPolicy: tf.S("TLS_1_2"),
				IPAddressType:  tf.S("ipv4"),
			},
			Tags: b.tags(b.failoverName),
		})
		aws.NewAPIGatewayV2APIMapping(r.scope, id, aws.APIGatewayV2APIMappingArgs{
			APIID:      r.api.ID(),
			DomainName: r.customDomain.ID(),
			Stage:      r.stage.ID(),
		})
		r.recordTarget = tf.Attr[tf.String](r.customDomain, "domain_name_configuration[0].target_domain_name")
		aws.NewRoute53Record(p.scope, "api_"+id, aws.Route53RecordArgs{
			ZoneID: b.zoneID,
			Name:   tf.S(b.failoverName),
			Type:   tf.S("A"),
			Alias: &aws.Route53RecordAlias{
				Name:   r.recordTarget,
				ZoneID: tf.Attr[tf.String](r.customDomain, "domain_name_configuration[0].hosted_zone_id"),
				// The region's own health check decides, not the target's.
				EvaluateTargetHealth: tf.B(false),
			},
			SetIdentifier:         tf.S(id),
			HealthCheckID:         r.healthCheck.ID(),
			FailoverRoutingPolicy: &aws.Route53RecordFailoverRoutingPolicy{Type: tf.S(strings.ToUpper(id))},
		})
	}
}
