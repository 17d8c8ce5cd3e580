package tf_test

import (
	"fmt"
	"testing"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// generated200 declares 200 resources that reference each other, in two
// provider configurations: the shape of a two-region stack.
func generated200() *tf.Stack {
	s := tf.NewStack("Bench")
	east := aws.NewProvider(s, "", aws.ProviderArgs{Region: tf.S("us-east-1")})
	west := aws.NewProvider(s, "west", aws.ProviderArgs{Region: tf.S("us-west-2")})
	for i := range 40 {
		sc := s.In(east)
		if i%2 == 1 {
			sc = s.In(west)
		}
		vpc := aws.NewVPC(sc, fmt.Sprintf("vpc%d", i), aws.VPCArgs{
			CIDRBlock: tf.S(fmt.Sprintf("10.%d.0.0/16", i)),
			Tags:      tf.StringMap(map[string]string{"Name": fmt.Sprintf("vpc-%d", i), "Team": "payments"}),
		})
		sub := aws.NewSubnet(sc, fmt.Sprintf("subnet%d", i), aws.SubnetArgs{VPCID: vpc.ID(), CIDRBlock: tf.S(fmt.Sprintf("10.%d.1.0/24", i))})
		sg := aws.NewSecurityGroup(sc, fmt.Sprintf("sg%d", i), aws.SecurityGroupArgs{VPCID: vpc.ID(), Description: tf.S("bench")})
		aws.NewVPCSecurityGroupIngressRule(sc, fmt.Sprintf("in%d", i), aws.VPCSecurityGroupIngressRuleArgs{
			SecurityGroupID: sg.ID(), ReferencedSecurityGroupID: sg.ID(), IPProtocol: tf.S("tcp"),
			FromPort: tf.N(5432), ToPort: tf.N(5432), Description: tf.S("postgres"),
		})
		aws.NewIAMRolePolicy(sc, fmt.Sprintf("policy%d", i), aws.IAMRolePolicyArgs{
			Role: tf.S("r"),
			Policy: tf.JSONEncode(tf.Raw(tf.Obj{"Version": "2012-10-17", "Statement": []any{
				tf.Obj{"Effect": "Allow", "Action": []string{"ec2:DescribeSubnets"}, "Resource": sub.ARN()},
			}})),
		})
	}
	return s
}

func BenchmarkSynth200(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := generated200().Synth(); err != nil {
			b.Fatal(err)
		}
	}
}
