package tf_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paydr/internal/golden"
	"paydr/internal/needs"
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
	"paydr/internal/tfcli"
)

// sample declares one of each thing a stack can hold.
func sample() *tf.Stack {
	s := tf.NewStack("Sample")
	s.Comment("a note for whoever applies this by hand; terraform ignores it")
	s.RequiredVersion(">= 1.11")
	s.SetBackend(tf.S3Backend{
		Bucket: "states", Key: "sample/terraform.tfstate", Region: "us-east-1",
		Encrypt: true, UseLockfile: true, DynamoDBTable: "locks",
	})
	east := aws.NewProvider(s, "", aws.ProviderArgs{
		Region:      tf.S("us-east-1"),
		DefaultTags: []aws.ProviderDefaultTags{{Tags: tf.StringMap(map[string]string{"Environment": "test"})}},
	})
	west := aws.NewProvider(s, "west", aws.ProviderArgs{Region: tf.S("us-west-2")})
	suffix := tf.DeclareVariable[tf.String](s, "suffix", tf.Variable{Type: "string", Default: tf.S("dev"), Description: "environment suffix"})
	name := tf.Local[tf.String](s, "name", tf.Sprintf("payments-%s", suffix))

	azs := aws.NewDataAvailabilityZones(s.In(east), "available", aws.DataAvailabilityZonesArgs{State: tf.S("available")})
	vpc := aws.NewVPC(s.In(east), "main", aws.VPCArgs{
		CIDRBlock: tf.S("10.0.0.0/16"),
		Tags:      tf.M(map[string]tf.String{"Name": name}),
	})
	subnet := aws.NewSubnet(s.In(east), "a", aws.SubnetArgs{
		VPCID:            vpc.ID(),
		CIDRBlock:        tf.S("10.0.1.0/24"),
		AvailabilityZone: tf.Expr[tf.String]("data.aws_availability_zones.available.names[0]"),
	})
	subnet.DependsOn(vpc, azs)
	pw := aws.NewEphemeralSecretsManagerRandomPassword(s.In(east), "db", aws.EphemeralSecretsManagerRandomPasswordArgs{
		PasswordLength: tf.N(32), ExcludePunctuation: tf.B(true),
	})
	secret := aws.NewSecretsManagerSecret(s.In(west), "db", aws.SecretsManagerSecretArgs{Name: tf.S("db"), Description: tf.S("literal ${not-a-template}")})
	aws.NewSecretsManagerSecretVersion(s.In(west), "db", aws.SecretsManagerSecretVersionArgs{
		SecretID:              secret.ID(),
		SecretStringWo:        tf.JSONEncode(tf.Raw(tf.Obj{"password": pw.RandomPassword()})),
		SecretStringWoVersion: tf.N(1),
	})
	table := aws.NewDynamoDBTable(s.In(east), "sessions", aws.DynamoDBTableArgs{
		Name:                tf.S("sessions"),
		BillingMode:         tf.S("PAY_PER_REQUEST"),
		HashKey:             tf.S("pk"),
		Attribute:           []aws.DynamoDBTableAttribute{{Name: tf.S("pk"), Type: tf.S("S")}},
		PointInTimeRecovery: &aws.DynamoDBTablePointInTimeRecovery{Enabled: tf.B(true)},
	})
	table.Lifecycle(tf.Lifecycle{IgnoreChanges: []string{"replica"}, PreventDestroy: true, CreateBeforeDestroy: true})
	aws.NewIAMRolePolicy(s.In(east), "read", aws.IAMRolePolicyArgs{
		Role: tf.S("reader"),
		Policy: tf.JSONEncode(tf.Raw(tf.Obj{
			"Version":   "2012-10-17",
			"Statement": []any{tf.Obj{"Effect": "Allow", "Action": []string{"dynamodb:GetItem"}, "Resource": table.ARN()}},
		})),
	})
	s.Output("vpc_id", tf.Output{Value: vpc.ID(), Description: "the VPC"})
	s.Output("subnet_ids", tf.Output{Value: tf.L(subnet.ID())})
	s.Output("secret_arn", tf.Output{Value: secret.ARN(), Sensitive: true})
	s.Output("zip_hash", tf.Output{Value: tf.Call[tf.String]("base64sha256", tf.S("x"))})
	return s
}

func TestSynthGolden(t *testing.T) {
	got, err := sample().Synth()
	if err != nil {
		t.Fatalf("Synth() error: %v", err)
	}
	golden.Check(t, filepath.Join("testdata", "sample", "main.tf.json"), got)
	again, err := sample().Synth()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(got) {
		t.Error("two syntheses of the same stack differ")
	}
}

// TestSynthValidates runs the real terraform validate, offline, against the
// golden configuration.
func TestSynthValidates(t *testing.T) {
	needs.Terraform(t)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "sample", "main.tf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf.json"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := tfcli.New(dir, tfcli.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(context.Background()); err != nil {
		t.Fatalf("terraform validate: %v", err)
	}
}

func TestSynthErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(s *tf.Stack)
		want  []string // each must appear in the error
	}{
		{
			name: "missing required argument",
			build: func(s *tf.Stack) {
				aws.NewSubnet(s, "a", aws.SubnetArgs{CIDRBlock: tf.S("10.0.0.0/24")})
			},
			want: []string{`aws_subnet.a: missing required argument "vpc_id"`},
		},
		{
			name: "missing required block",
			build: func(s *tf.Stack) {
				aws.NewCloudWatchEventTarget(s, "t", aws.CloudWatchEventTargetArgs{
					Rule: tf.S("r"), ARN: tf.S("arn:aws:events:us-west-2:1:event-bus/b"),
					DeadLetterConfig: nil,
				})
				aws.NewBackupPlan(s, "p", aws.BackupPlanArgs{Name: tf.S("p")})
			},
			want: []string{`aws_backup_plan.p: block "rule" needs at least 1 items, has 0`},
		},
		{
			name: "block over max items",
			build: func(s *tf.Stack) {
				targets := make([]aws.CloudWatchEventTargetRunCommandTargets, 6)
				for i := range targets {
					targets[i] = aws.CloudWatchEventTargetRunCommandTargets{Key: tf.S("tag:Name"), Values: tf.Strings("x")}
				}
				aws.NewCloudWatchEventTarget(s, "t", aws.CloudWatchEventTargetArgs{
					Rule: tf.S("r"), ARN: tf.S("arn:aws:ssm:us-east-1::document/AWS-RunShellScript"),
					RunCommandTargets: targets,
				})
			},
			want: []string{`aws_cloudwatch_event_target.t: block "run_command_targets" allows at most 5 items, has 6`},
		},
		{
			name: "reference to an unknown resource",
			build: func(s *tf.Stack) {
				other := tf.NewStack("other")
				vpc := aws.NewVPC(other, "elsewhere", aws.VPCArgs{CIDRBlock: tf.S("10.0.0.0/16")})
				aws.NewSubnet(s, "a", aws.SubnetArgs{VPCID: vpc.ID(), CIDRBlock: tf.S("10.0.0.0/24")})
				aws.NewSubnet(s, "b", aws.SubnetArgs{VPCID: tf.Expr[tf.String]("aws_vpc.typo.id"), CIDRBlock: tf.S("10.0.1.0/24")})
				s.Output("x", tf.Output{Value: tf.Expr[tf.String]("var.nope")})
			},
			want: []string{
				"aws_subnet.a.vpc_id: reference to aws_vpc.elsewhere, which this stack does not declare",
				"aws_subnet.b.vpc_id: reference to aws_vpc.typo, which this stack does not declare",
				"output.x: reference to undeclared variable var.nope",
			},
		},
		{
			name: "two resources with one address",
			build: func(s *tf.Stack) {
				aws.NewVPC(s, "main", aws.VPCArgs{CIDRBlock: tf.S("10.0.0.0/16")})
				aws.NewVPC(s, "main", aws.VPCArgs{CIDRBlock: tf.S("10.1.0.0/16")})
			},
			want: []string{"aws_vpc.main: declared twice: each resource needs a unique name"},
		},
		{
			name: "ignore_changes names an unknown argument",
			build: func(s *tf.Stack) {
				c := aws.NewRDSCluster(s, "c", aws.RDSClusterArgs{Engine: tf.S("aurora-postgresql")})
				c.Lifecycle(tf.Lifecycle{IgnoreChanges: []string{"global_cluster_identifer"}})
			},
			want: []string{`aws_rds_cluster.c.lifecycle: ignore_changes names "global_cluster_identifer", which aws_rds_cluster does not have`},
		},
		{
			name: "provider from another stack",
			build: func(s *tf.Stack) {
				other := tf.NewStack("other")
				p := aws.NewProvider(other, "x", aws.ProviderArgs{})
				aws.NewVPC(s.In(p), "v", aws.VPCArgs{CIDRBlock: tf.S("10.0.0.0/16")})
			},
			want: []string{"aws_vpc.v: provider aws.x is not declared in this stack"},
		},
		{
			name: "invalid expression",
			build: func(s *tf.Stack) {
				aws.NewVPC(s, "v", aws.VPCArgs{CIDRBlock: tf.Expr[tf.String]("cidrsubnet(")})
			},
			want: []string{`aws_vpc.v.cidr_block: invalid expression "cidrsubnet("`},
		},
		{
			name: "invalid name",
			build: func(s *tf.Stack) {
				aws.NewVPC(s, "1 bad", aws.VPCArgs{CIDRBlock: tf.S("10.0.0.0/16")})
			},
			want: []string{`aws_vpc.1 bad: invalid name "1 bad"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tf.NewStack("Errors")
			tt.build(s)
			out, err := s.Synth()
			if err == nil {
				t.Fatalf("Synth() = %d bytes, nil error; want errors %q", len(out), tt.want)
			}
			var diags tf.Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("Synth() error %T, want tf.Diagnostics", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Synth() error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestSynthReportsAllProblems checks that synthesis does not stop at the first problem.
func TestSynthReportsAllProblems(t *testing.T) {
	s := tf.NewStack("Many")
	for i := range 3 {
		aws.NewSubnet(s, fmt.Sprintf("s%d", i), aws.SubnetArgs{})
	}
	_, err := s.Synth()
	var diags tf.Diagnostics
	if !errors.As(err, &diags) || len(diags) != 3 {
		t.Fatalf("Synth() error = %v, want 3 diagnostics", err)
	}
}
