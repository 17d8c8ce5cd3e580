package stack

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// Rule is one preflight check: a mistake AWS would refuse at apply time (or
// that would silently break the DR design), found before anything deploys.
type Rule struct {
	// Name identifies the rule in findings.
	Name string
	// Why says what AWS does when the mistake reaches it.
	Why   string
	check func(ix *index) []tf.Diagnostic
}

// Rules are the preflight checks, in the order they run.
var Rules = []Rule{
	{"global-cluster-backtrack", "backtrack is not supported on Aurora global databases (nor on Aurora PostgreSQL); CreateDBCluster fails", checkBacktrack},
	{"route-destination", "a route without a destination fails at CreateRoute", checkRouteDestination},
	{"dms-engine-version", "CreateReplicationInstance fails on an engine version DMS does not offer; leave it unset to let AWS choose", checkDMSEngineVersion},
	{"reserved-domain", "Route 53 refuses hosted zones for names reserved by AWS or by RFC 2606/6761, and for top-level domains", checkReservedDomain},
	{"public-zone-reserved-name", "a name reserved for private use (.internal, .local, .home.arpa, .alt) is never delegated: a public zone for it answers no one", checkPublicZoneReservedName},
	{"certificate-reserved-name", "no certificate authority issues for a name reserved for private use or for documentation and testing: the certificate stays pending until its validation times out", checkCertificateReservedName},
	{"duplicate-security-group-rule", "AuthorizeSecurityGroupIngress/Egress fails with InvalidPermission.Duplicate", checkDuplicateSGRules},
	{"security-group-rule-description", "an undescribed rule cannot be audited; every rule says why it exists", checkSGRuleDescription},
	{"managed-password-global-cluster", "RDS-managed master passwords are not supported on global clusters", checkManagedPassword},
	{"global-cluster-credentials", "only the cluster created as writer takes master credentials; a secondary cluster rejects them", checkSecondaryCredentials},
	{"secondary-waits-for-primary", "a secondary cluster created before the primary has an instance fails to join the global cluster", checkSecondaryWaits},
	{"plaintext-secret", "a secret given as a plain argument is stored in plan and state; use the write-only argument", checkPlaintextSecrets},
	{"vpc-cidr-overlap", "overlapping VPC ranges cannot be peered or routed between regions", checkVPCOverlap},
	{"replica-in-own-region", "a DynamoDB replica in its own table's region fails with ValidationException", checkReplicaRegion},
	{"alarm-topic-managed-key", "CloudWatch cannot publish alarms to an SNS topic encrypted with the AWS managed aws/sns key", checkAlarmTopicKey},
}

// Preflight runs every rule on s and returns all findings, each naming the
// resource and the rule, or nil.
func Preflight(s *tf.Stack) error {
	ix := newIndex(s)
	var diags tf.Diagnostics
	for _, r := range Rules {
		for _, d := range r.check(ix) {
			d.Message = fmt.Sprintf("[%s] %s (%s)", r.Name, d.Message, r.Why)
			diags = append(diags, d)
		}
	}
	if len(diags) == 0 {
		return nil
	}
	sort.SliceStable(diags, func(i, j int) bool { return diags[i].Address < diags[j].Address })
	return PreflightError{diags}
}

// PreflightError lists preflight findings.
type PreflightError struct{ Findings tf.Diagnostics }

func (e PreflightError) Error() string {
	lines := make([]string, len(e.Findings))
	for i, d := range e.Findings {
		lines[i] = d.String()
	}
	return fmt.Sprintf("preflight: %d problems AWS would refuse:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// index gives rules the stack's objects by type.
type index struct {
	s      *tf.Stack
	byType map[string][]*tf.Resource
}

func newIndex(s *tf.Stack) *index {
	ix := &index{s: s, byType: map[string][]*tf.Resource{}}
	for _, r := range s.Objects() {
		ix.byType[r.Type()] = append(ix.byType[r.Type()], r)
	}
	return ix
}

// regionOf returns the literal region of the provider configuration r uses.
func (ix *index) regionOf(r *tf.Resource) string {
	p := r.ProviderConfig()
	if p == nil {
		for _, q := range ix.s.Providers() {
			if q.Alias() == "" {
				p = q
			}
		}
	}
	if p == nil {
		return ""
	}
	if a, ok := p.Args().(*aws.ProviderArgs); ok {
		v, _ := a.Region.Literal()
		return v
	}
	return ""
}

func finding(r *tf.Resource, attr, format string, args ...any) tf.Diagnostic {
	addr := r.Addr()
	if attr != "" {
		addr += "." + attr
	}
	return tf.Diagnostic{Address: addr, Message: fmt.Sprintf(format, args...)}
}

func each[A any](ix *index, typ string, f func(r *tf.Resource, a *A) []tf.Diagnostic) []tf.Diagnostic {
	var out []tf.Diagnostic
	for _, r := range ix.byType[typ] {
		if a, ok := any(r.Args()).(*A); ok {
			out = append(out, f(r, a)...)
		}
	}
	return out
}

func checkBacktrack(ix *index) []tf.Diagnostic {
	return each(ix, "aws_rds_cluster", func(r *tf.Resource, a *aws.RDSClusterArgs) []tf.Diagnostic {
		if !a.BacktrackWindow.IsSet() {
			return nil
		}
		if n, ok := a.BacktrackWindow.Int(); ok && n == 0 {
			return nil
		}
		switch {
		case a.GlobalClusterIdentifier.IsSet():
			return []tf.Diagnostic{finding(r, "backtrack_window", "backtrack on a member of a global cluster")}
		case literalIs(a.Engine, "aurora-postgresql"):
			return []tf.Diagnostic{finding(r, "backtrack_window", "backtrack on Aurora PostgreSQL")}
		}
		return nil
	})
}

func literalIs(v tf.String, want string) bool {
	s, ok := v.Literal()
	return ok && s == want
}

func checkRouteDestination(ix *index) []tf.Diagnostic {
	out := each(ix, "aws_route", func(r *tf.Resource, a *aws.RouteArgs) []tf.Diagnostic {
		if !a.DestinationCIDRBlock.IsSet() && !a.DestinationIPv6CIDRBlock.IsSet() && !a.DestinationPrefixListID.IsSet() {
			return []tf.Diagnostic{finding(r, "", "route has no destination: set destination_cidr_block, destination_ipv6_cidr_block or destination_prefix_list_id")}
		}
		return nil
	})
	return append(out, each(ix, "aws_route_table", func(r *tf.Resource, a *aws.RouteTableArgs) []tf.Diagnostic {
		var out []tf.Diagnostic
		for i, rt := range a.Route {
			if !rt.CIDRBlock.IsSet() && !rt.IPv6CIDRBlock.IsSet() && !rt.DestinationPrefixListID.IsSet() {
				out = append(out, finding(r, fmt.Sprintf("route[%d]", i), "route has no destination: set cidr_block, ipv6_cidr_block or destination_prefix_list_id"))
			}
		}
		return out
	})...)
}

// DMSEngineVersions are the replication engine versions DMS offers; an
// unlisted pin is refused. The stack itself pins none.
var DMSEngineVersions = []string{"3.4.7", "3.5.1", "3.5.2", "3.5.3", "3.5.4", "3.6.0", "3.6.1"}

func checkDMSEngineVersion(ix *index) []tf.Diagnostic {
	return each(ix, "aws_dms_replication_instance", func(r *tf.Resource, a *aws.DMSReplicationInstanceArgs) []tf.Diagnostic {
		v, ok := a.EngineVersion.Literal()
		if !ok || slices.Contains(DMSEngineVersions, v) {
			return nil
		}
		return []tf.Diagnostic{finding(r, "engine_version", "DMS engine version %q does not exist (known: %s); leave engine_version unset", v, strings.Join(DMSEngineVersions, ", "))}
	})
}

// reservedDomains are names no hosted zone may have, with every name under
// them: AWS's own, and those RFC 2606 and RFC 6761 reserve for
// documentation, testing and loopback.
var reservedDomains = []string{"example.com", "example.net", "example.org", "example.edu", "example", "test", "invalid", "localhost", "amazonaws.com", "aws"}

// ReservedDomain returns the reserved name d is or falls under, or "".
func ReservedDomain(d string) string { return under(d, reservedDomains) }

// privateUseNames are names reserved for private use, never delegated in
// the public DNS, with every name under them: .internal (ICANN, 2024),
// .local (RFC 6762), .home.arpa (RFC 8375), .alt (RFC 9476). Their zones
// can only be private.
var privateUseNames = []string{"internal", "local", "home.arpa", "alt"}

// PrivateUseName returns the name reserved for private use that d is or
// falls under, or "".
func PrivateUseName(d string) string { return under(d, privateUseNames) }

// under returns the first of names that d is or falls under, or "".
func under(d string, names []string) string {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	for _, r := range names {
		if d == r || strings.HasSuffix(d, "."+r) {
			return r
		}
	}
	return ""
}

func checkReservedDomain(ix *index) []tf.Diagnostic {
	return each(ix, "aws_route53_zone", func(r *tf.Resource, a *aws.Route53ZoneArgs) []tf.Diagnostic {
		name, ok := a.Name.Literal()
		if !ok {
			return nil
		}
		if res := ReservedDomain(name); res != "" {
			return []tf.Diagnostic{finding(r, "name", "%q is reserved (%s): set ROUTE53_DOMAIN (--domain) to a domain you own, such as payments.<company domain>, or leave it unset for a private migration-<suffix>.internal", name, res)}
		}
		if !strings.Contains(strings.TrimSuffix(name, "."), ".") {
			return []tf.Diagnostic{finding(r, "name", "%q is a top-level domain; Route 53 hosts zones below one", name)}
		}
		return nil
	})
}

func checkPublicZoneReservedName(ix *index) []tf.Diagnostic {
	return each(ix, "aws_route53_zone", func(r *tf.Resource, a *aws.Route53ZoneArgs) []tf.Diagnostic {
		name, ok := a.Name.Literal()
		if !ok || len(a.VPC) > 0 {
			return nil // private: answers inside its VPCs, whatever its name
		}
		if res := PrivateUseName(name); res != "" {
			return []tf.Diagnostic{finding(r, "name", "a public zone for %q, under .%s: leave ROUTE53_ZONE unset (such names get a private zone in the stack's VPCs) or set it to %s, or set ROUTE53_DOMAIN (--domain) to a domain you own for a public zone", name, res, ZonePrivate)}
		}
		return nil
	})
}

func checkCertificateReservedName(ix *index) []tf.Diagnostic {
	return each(ix, "aws_acm_certificate", func(r *tf.Resource, a *aws.ACMCertificateArgs) []tf.Diagnostic {
		name, ok := a.DomainName.Literal()
		if !ok {
			return nil
		}
		res := ReservedDomain(name)
		if res == "" {
			res = PrivateUseName(name)
		}
		if res == "" {
			return nil
		}
		return []tf.Diagnostic{finding(r, "domain_name", "a certificate for %q, under .%s: set ROUTE53_DOMAIN (--domain) to a domain you own, or leave it unset for the private migration-<suffix>.internal, which needs no certificate", name, res)}
	})
}

// sgRule is a security group rule reduced to what makes two rules the same.
type sgRule struct {
	direction, group, protocol, from, to, peer string
}

func (k sgRule) String() string {
	return fmt.Sprintf("%s %s %s-%s %s", k.direction, k.protocol, k.from, k.to, k.peer)
}

func checkDuplicateSGRules(ix *index) []tf.Diagnostic {
	seen := map[sgRule]string{}
	var out []tf.Diagnostic
	add := func(r *tf.Resource, attr string, k sgRule) {
		if first, dup := seen[k]; dup {
			out = append(out, finding(r, attr, "duplicates the rule of %s (%s)", first, k))
			return
		}
		where := r.Addr()
		if attr != "" {
			where += "." + attr
		}
		seen[k] = where
	}
	peer := func(vals ...tf.Value) string {
		var parts []string
		for _, v := range vals {
			if v.IsSet() {
				parts = append(parts, tf.HCL(v))
			}
		}
		return strings.Join(parts, ",")
	}
	for _, r := range ix.byType["aws_vpc_security_group_ingress_rule"] {
		a := r.Args().(*aws.VPCSecurityGroupIngressRuleArgs)
		add(r, "", sgRule{"ingress", tf.HCL(a.SecurityGroupID), protocol(a.IPProtocol), tf.HCL(a.FromPort), tf.HCL(a.ToPort),
			peer(a.CIDRIPv4, a.CIDRIPv6, a.PrefixListID, a.ReferencedSecurityGroupID)})
	}
	for _, r := range ix.byType["aws_vpc_security_group_egress_rule"] {
		a := r.Args().(*aws.VPCSecurityGroupEgressRuleArgs)
		add(r, "", sgRule{"egress", tf.HCL(a.SecurityGroupID), protocol(a.IPProtocol), tf.HCL(a.FromPort), tf.HCL(a.ToPort),
			peer(a.CIDRIPv4, a.CIDRIPv6, a.PrefixListID, a.ReferencedSecurityGroupID)})
	}
	for _, r := range ix.byType["aws_security_group"] {
		a := r.Args().(*aws.SecurityGroupArgs)
		group := "self:" + r.Addr()
		for dir, rules := range map[string][]aws.SecurityGroupIngress{"ingress": a.Ingress} {
			for i, in := range rules {
				add(r, fmt.Sprintf("%s[%d]", dir, i), sgRule{dir, group, protocol(in.Protocol), tf.HCL(in.FromPort), tf.HCL(in.ToPort),
					peer(in.CIDRBlocks, in.IPv6CIDRBlocks, in.PrefixListIDs, in.SecurityGroups, in.Self)})
			}
		}
		for i, e := range a.Egress {
			add(r, fmt.Sprintf("egress[%d]", i), sgRule{"egress", group, protocol(e.Protocol), tf.HCL(e.FromPort), tf.HCL(e.ToPort),
				peer(e.CIDRBlocks, e.IPv6CIDRBlocks, e.PrefixListIDs, e.SecurityGroups, e.Self)})
		}
	}
	return out
}

// protocol normalises the protocol spellings AWS treats alike.
func protocol(v tf.String) string {
	s, ok := v.Literal()
	if !ok {
		return tf.HCL(v)
	}
	switch strings.ToLower(s) {
	case "6":
		return "tcp"
	case "17":
		return "udp"
	case "-1", "all":
		return "-1"
	}
	return strings.ToLower(s)
}

func checkSGRuleDescription(ix *index) []tf.Diagnostic {
	var out []tf.Diagnostic
	for _, r := range ix.byType["aws_vpc_security_group_ingress_rule"] {
		if !r.Args().(*aws.VPCSecurityGroupIngressRuleArgs).Description.IsSet() {
			out = append(out, finding(r, "description", "rule has no description"))
		}
	}
	for _, r := range ix.byType["aws_vpc_security_group_egress_rule"] {
		if !r.Args().(*aws.VPCSecurityGroupEgressRuleArgs).Description.IsSet() {
			out = append(out, finding(r, "description", "rule has no description"))
		}
	}
	return out
}

func checkManagedPassword(ix *index) []tf.Diagnostic {
	return each(ix, "aws_rds_cluster", func(r *tf.Resource, a *aws.RDSClusterArgs) []tf.Diagnostic {
		if on, _ := a.ManageMasterUserPassword.Literal(); on && a.GlobalClusterIdentifier.IsSet() {
			return []tf.Diagnostic{finding(r, "manage_master_user_password", "RDS-managed master password on a global cluster member: use master_password_wo with a generated password")}
		}
		return nil
	})
}

// hasCredentials reports whether a cluster sets any master credential.
func hasCredentials(a *aws.RDSClusterArgs) bool {
	return a.MasterUsername.IsSet() || a.MasterPassword.IsSet() || a.MasterPasswordWo.IsSet() || a.ManageMasterUserPassword.IsSet()
}

func checkSecondaryCredentials(ix *index) []tf.Diagnostic {
	byGlobal := map[string][]*tf.Resource{}
	for _, r := range ix.byType["aws_rds_cluster"] {
		a := r.Args().(*aws.RDSClusterArgs)
		if a.GlobalClusterIdentifier.IsSet() && hasCredentials(a) {
			g := tf.HCL(a.GlobalClusterIdentifier)
			byGlobal[g] = append(byGlobal[g], r)
		}
	}
	var out []tf.Diagnostic
	for _, rs := range byGlobal {
		for _, r := range rs[1:] {
			out = append(out, finding(r, "master_password_wo", "a second member of the global cluster (after %s) sets master credentials; only the primary cluster may", rs[0].Addr()))
		}
	}
	return out
}

func checkSecondaryWaits(ix *index) []tf.Diagnostic {
	return each(ix, "aws_rds_cluster", func(r *tf.Resource, a *aws.RDSClusterArgs) []tf.Diagnostic {
		if !a.GlobalClusterIdentifier.IsSet() || hasCredentials(a) {
			return nil // not a global member, or the primary
		}
		for _, d := range r.Dependencies() {
			for _, inst := range ix.byType["aws_rds_cluster_instance"] {
				if inst.Is(d) {
					return nil
				}
			}
		}
		return []tf.Diagnostic{finding(r, "depends_on", "secondary cluster does not depend on the primary cluster's instances")}
	})
}

func checkPlaintextSecrets(ix *index) []tf.Diagnostic {
	out := each(ix, "aws_rds_cluster", func(r *tf.Resource, a *aws.RDSClusterArgs) []tf.Diagnostic {
		if a.MasterPassword.IsSet() {
			return []tf.Diagnostic{finding(r, "master_password", "master_password is stored in state: use master_password_wo")}
		}
		return nil
	})
	out = append(out, each(ix, "aws_ssm_parameter", func(r *tf.Resource, a *aws.SSMParameterArgs) []tf.Diagnostic {
		if literalIs(a.Type, "SecureString") && (a.Value.IsSet() || a.InsecureValue.IsSet()) {
			return []tf.Diagnostic{finding(r, "value", "a SecureString's value is stored in state: use value_wo")}
		}
		return nil
	})...)
	return append(out, each(ix, "aws_secretsmanager_secret_version", func(r *tf.Resource, a *aws.SecretsManagerSecretVersionArgs) []tf.Diagnostic {
		if a.SecretString.IsSet() || a.SecretBinary.IsSet() {
			return []tf.Diagnostic{finding(r, "secret_string", "the secret's value is stored in state: use secret_string_wo")}
		}
		return nil
	})...)
}

func checkVPCOverlap(ix *index) []tf.Diagnostic {
	type vpc struct {
		r *tf.Resource
		p netip.Prefix
	}
	var vpcs []vpc
	var out []tf.Diagnostic
	for _, r := range ix.byType["aws_vpc"] {
		s, ok := r.Args().(*aws.VPCArgs).CIDRBlock.Literal()
		if !ok {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			out = append(out, finding(r, "cidr_block", "%q is not a CIDR block", s))
			continue
		}
		for _, o := range vpcs {
			if o.p.Overlaps(p) {
				out = append(out, finding(r, "cidr_block", "%s overlaps %s of %s", p, o.p, o.r.Addr()))
			}
		}
		vpcs = append(vpcs, vpc{r, p})
	}
	return out
}

func checkReplicaRegion(ix *index) []tf.Diagnostic {
	return each(ix, "aws_dynamodb_table", func(r *tf.Resource, a *aws.DynamoDBTableArgs) []tf.Diagnostic {
		var out []tf.Diagnostic
		home := ix.regionOf(r)
		for i, rep := range a.Replica {
			if literalIs(rep.RegionName, home) {
				out = append(out, finding(r, fmt.Sprintf("replica[%d].region_name", i), "replica in %s, the table's own region", home))
			}
		}
		return out
	})
}

func checkAlarmTopicKey(ix *index) []tf.Diagnostic {
	return each(ix, "aws_sns_topic", func(r *tf.Resource, a *aws.SNSTopicArgs) []tf.Diagnostic {
		if literalIs(a.KMSMasterKeyID, "alias/aws/sns") {
			return []tf.Diagnostic{finding(r, "kms_master_key_id", "topic uses alias/aws/sns; use a customer managed key whose policy lets cloudwatch.amazonaws.com use it")}
		}
		return nil
	})
}
