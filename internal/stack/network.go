package stack

import (
	"fmt"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// azCount is the number of availability zones each region spans.
const azCount = 3

// vpcCIDR returns a region's VPC range; the regions never overlap.
func vpcCIDR(index int) string { return fmt.Sprintf("10.%d.0.0/16", index) }

// network declares, per region: the VPC, public and private subnets in three
// availability zones, the internet gateway, one NAT gateway with its EIP,
// route tables whose routes each name a destination, the gateway endpoints
// for DynamoDB and S3, and VPC flow logs.
func (b *builder) network() {
	for _, r := range b.regions() {
		b.regionNetwork(r)
	}
}

func (b *builder) regionNetwork(r *region) {
	sc := r.scope
	id := string(r.role)
	azs := aws.NewDataAvailabilityZones(sc, id, aws.DataAvailabilityZonesArgs{State: tf.S("available")})
	vpcName := b.name("payment-vpc-" + id)
	r.vpc = aws.NewVPC(sc, id, aws.VPCArgs{
		CIDRBlock:          tf.S(vpcCIDR(r.index)),
		EnableDNSHostnames: tf.B(true),
		EnableDNSSupport:   tf.B(true),
		Tags:               b.tags(vpcName),
	})
	for i := range azCount {
		az := tf.Expr[tf.String](fmt.Sprintf("data.aws_availability_zones.%s.names[%d]", id, i))
		pub := aws.NewSubnet(sc, fmt.Sprintf("%s_public_%d", id, i), aws.SubnetArgs{
			VPCID:               r.vpc.ID(),
			CIDRBlock:           tf.S(fmt.Sprintf("10.%d.%d.0/24", r.index, i)),
			AvailabilityZone:    az,
			MapPublicIPOnLaunch: tf.B(false),
			Tags:                b.tags(b.name(fmt.Sprintf("payment-public-%s-%d", id, i))),
		})
		priv := aws.NewSubnet(sc, fmt.Sprintf("%s_private_%d", id, i), aws.SubnetArgs{
			VPCID:            r.vpc.ID(),
			CIDRBlock:        tf.S(fmt.Sprintf("10.%d.%d.0/24", r.index, 10+i)),
			AvailabilityZone: az,
			Tags:             b.tags(b.name(fmt.Sprintf("payment-private-%s-%d", id, i))),
		})
		pub.DependsOn(azs)
		priv.DependsOn(azs)
		r.public = append(r.public, pub)
		r.private = append(r.private, priv)
	}

	igw := aws.NewInternetGateway(sc, id, aws.InternetGatewayArgs{VPCID: r.vpc.ID(), Tags: b.tags(b.name("payment-igw-" + id))})
	eip := aws.NewEIP(sc, id+"_nat", aws.EIPArgs{Domain: tf.S("vpc"), Tags: b.tags(b.name("payment-nat-eip-" + id))})
	eip.DependsOn(igw)
	nat := aws.NewNATGateway(sc, id, aws.NATGatewayArgs{
		AllocationID: eip.ID(),
		SubnetID:     r.public[0].ID(),
		Tags:         b.tags(b.name("payment-nat-" + id)),
	})
	nat.DependsOn(igw)

	publicRT := aws.NewRouteTable(sc, id+"_public", aws.RouteTableArgs{VPCID: r.vpc.ID(), Tags: b.tags(b.name("payment-public-rt-" + id))})
	aws.NewRoute(sc, id+"_public_internet", aws.RouteArgs{
		RouteTableID:         publicRT.ID(),
		DestinationCIDRBlock: tf.S("0.0.0.0/0"),
		GatewayID:            igw.ID(),
	})
	r.privateRouteTable = aws.NewRouteTable(sc, id+"_private", aws.RouteTableArgs{VPCID: r.vpc.ID(), Tags: b.tags(b.name("payment-private-rt-" + id))})
	aws.NewRoute(sc, id+"_private_nat", aws.RouteArgs{
		RouteTableID:         r.privateRouteTable.ID(),
		DestinationCIDRBlock: tf.S("0.0.0.0/0"),
		NATGatewayID:         nat.ID(),
	})
	for i := range azCount {
		aws.NewRouteTableAssociation(sc, fmt.Sprintf("%s_public_%d", id, i), aws.RouteTableAssociationArgs{
			SubnetID: r.public[i].ID(), RouteTableID: publicRT.ID(),
		})
		aws.NewRouteTableAssociation(sc, fmt.Sprintf("%s_private_%d", id, i), aws.RouteTableAssociationArgs{
			SubnetID: r.private[i].ID(), RouteTableID: r.privateRouteTable.ID(),
		})
	}
	for _, svc := range []string{"dynamodb", "s3"} {
		ep := aws.NewVPCEndpoint(sc, id+"_"+svc, aws.VPCEndpointArgs{
			VPCID:           r.vpc.ID(),
			ServiceName:     tf.S("com.amazonaws." + r.name + "." + svc),
			VPCEndpointType: tf.S("Gateway"),
			RouteTableIDs:   tf.SetOf(r.privateRouteTable.ID(), publicRT.ID()),
			Tags:            b.tags(b.name("payment-" + svc + "-endpoint-" + id)),
		})
		if svc == "dynamodb" {
			r.dynamoEndpoint = ep
		}
	}

	// Flow logs to CloudWatch Logs, through a role the service assumes.
	logName := "/paydr/" + b.cfg.EnvironmentSuffix + "/vpc-flow-logs/" + id
	logs := aws.NewCloudWatchLogGroup(sc, id+"_flow_logs", aws.CloudWatchLogGroupArgs{
		Name:            tf.S(logName),
		RetentionInDays: tf.N(30),
		KMSKeyID:        r.kmsKeyARN,
	})
	roleName := b.name("payment-flow-logs-" + id)
	role := aws.NewIAMRole(sc, id+"_flow_logs", aws.IAMRoleArgs{
		Name:             tf.S(roleName),
		AssumeRolePolicy: b.serviceTrust("vpc-flow-logs.amazonaws.com", b.arn("ec2", r.name, "vpc-flow-log/*")),
	})
	aws.NewIAMRolePolicy(sc, id+"_flow_logs", aws.IAMRolePolicyArgs{
		Name: tf.S("write-flow-logs"),
		Role: role.ID(),
		Policy: policy(statement(
			[]string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
			tf.Join(logs.ARN(), tf.S(":*")),
		)),
	})
	aws.NewFlowLog(sc, id, aws.FlowLogArgs{
		VPCID:              r.vpc.ID(),
		TrafficType:        tf.S("ALL"),
		LogDestinationType: tf.S("cloud-watch-logs"),
		LogDestination:     logs.ARN(),
		IAMRoleARN:         role.ARN(),
		Tags:               b.tags(b.name("payment-flow-log-" + id)),
	})
}

// subnetIDs returns the ids of subnets as a set.
func subnetIDs(subnets []*aws.Subnet) tf.Set[tf.String] {
	ids := make([]tf.String, len(subnets))
	for i, s := range subnets {
		ids[i] = s.ID()
	}
	return tf.SetOf(ids...)
}
