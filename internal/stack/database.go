package stack

import (
	"fmt"
	"strings"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// dbName is the database the ledger lives in.
const dbName = "payments"

// dbAppUser is the role the processors connect as
// (paydr/internal/ledger.AppUser; a test keeps them equal).
const dbAppUser = "payment_app"

// dbCACertIdentifier is the certificate authority of the cluster
// instances' server certificates: RSA 2048, rotated by RDS before it
// expires, its regional roots ("Amazon RDS <region> Root CA RSA2048 G1") in
// the bundle the processor ships (paydr/internal/bundle/rdsca).
const dbCACertIdentifier = "rds-ca-rsa2048-g1"

// dbMasterUser is the Aurora master user name (not a secret; the password is).
const dbMasterUser = "paydr_admin"

// encryption declares a multi-region KMS key in the primary region and its
// replica in the secondary, with an alias in each. Aurora storage, the
// session table, the database secret, the backup vaults and the log groups
// use them.
func (b *builder) encryption() {
	p, s := b.primary, b.secondary
	alias := "alias/" + b.name("paydr")
	key := aws.NewKMSKey(p.scope, "primary", aws.KMSKeyArgs{
		Description:          tf.S("paydr " + b.cfg.EnvironmentSuffix + ": Aurora, DynamoDB, secrets and backups"),
		MultiRegion:          tf.B(true),
		EnableKeyRotation:    tf.B(true),
		DeletionWindowInDays: tf.N(30),
		Policy:               b.keyPolicy(p),
		Tags:                 b.tags(b.name("paydr-key")),
	})
	aws.NewKMSAlias(p.scope, "primary", aws.KMSAliasArgs{Name: tf.S(alias), TargetKeyID: key.KeyID()})
	p.kmsKeyARN = key.ARN()
	if b.local() {
		// moto's ReplicateKey copies the key shallowly (shared aliases and
		// multi-Region configuration, tags dropped): locally the secondary
		// region gets a key of its own.
		own := aws.NewKMSKey(s.scope, "secondary", aws.KMSKeyArgs{
			Description:          tf.S("paydr " + b.cfg.EnvironmentSuffix + ": secondary region key (local target)"),
			EnableKeyRotation:    tf.B(true),
			DeletionWindowInDays: tf.N(30),
			Policy:               b.keyPolicy(s),
			Tags:                 b.tags(b.name("paydr-key")),
		})
		aws.NewKMSAlias(s.scope, "secondary", aws.KMSAliasArgs{Name: tf.S(alias), TargetKeyID: own.KeyID()})
		s.kmsKeyARN = own.ARN()
		b.note("local: the secondary region gets its own aws_kms_key, not an aws_kms_replica_key (moto copies replica keys shallowly)")
		return
	}
	replica := aws.NewKMSReplicaKey(s.scope, "secondary", aws.KMSReplicaKeyArgs{
		Description:          tf.S("paydr " + b.cfg.EnvironmentSuffix + ": replica of the primary key"),
		PrimaryKeyARN:        key.ARN(),
		DeletionWindowInDays: tf.N(30),
		Policy:               b.keyPolicy(s),
		Tags:                 b.tags(b.name("paydr-key")),
	})
	aws.NewKMSAlias(s.scope, "secondary", aws.KMSAliasArgs{Name: tf.S(alias), TargetKeyID: replica.KeyID()})
	s.kmsKeyARN = replica.ARN()
}

// keyPolicy is the policy of r's key: the account administers it, the
// services paydr uses encrypt with it, and r's CloudWatch Logs encrypts
// this account's log groups in r with it. CloudWatch Logs is a regional
// principal (logs.<region>.amazonaws.com) and names the log group in the
// encryption context, which the policy requires to be one of the
// account's log groups in r.
func (b *builder) keyPolicy(r *region) tf.String {
	root := tf.Sprintf("arn:%s:iam::%s:root", b.partition.Partition(), b.caller.AccountID())
	return tf.JSONEncode(tf.Raw(tf.Obj{
		"Version": "2012-10-17",
		"Statement": []any{
			tf.Obj{"Sid": "AccountAdministers", "Effect": "Allow", "Principal": tf.Obj{"AWS": root}, "Action": "kms:*", "Resource": "*"},
			tf.Obj{
				"Sid": "ServicesEncrypt", "Effect": "Allow",
				"Principal": tf.Obj{"Service": []string{"events.amazonaws.com", "sns.amazonaws.com", "backup.amazonaws.com", "cloudwatch.amazonaws.com"}},
				"Action":    []string{"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"},
				"Resource":  "*",
			},
			tf.Obj{
				"Sid": "LogsEncrypt", "Effect": "Allow",
				"Principal": tf.Obj{"Service": "logs." + r.name + ".amazonaws.com"},
				"Action":    []string{"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"},
				"Resource":  "*",
				"Condition": tf.Obj{"ArnLike": tf.Obj{"kms:EncryptionContext:aws:logs:arn": b.arn("logs", r.name, "log-group:*")}},
			},
		},
	}))
}

// clusterParameterGroup declares the cluster parameter group of r's cluster:
// TLS required (rds.force_ssl), and, on the primary cluster's group, the
// bound on loss (rds.global_db_rpo, Config.RPOBoundSeconds): the cluster
// created as the writer.
//
// The bound follows the writer: paydr dr sets and resets rds.global_db_rpo
// in these groups as switchover, failover and failback move the writer
// (paydr/internal/dr/awsdr). So the groups' parameters belong to DR
// automation once the groups exist, and Terraform ignores changes to them:
// otherwise the next apply after a switchover would put the bound back on
// the primary slot's cluster, now the standby, and take it off the new
// writer — and after a failover, a bound on a writer without a healthy
// standby blocks every commit. (The provider has no resource for one
// parameter of a group, so ignoring the whole parameter argument is the
// only split Terraform offers. A deliberate change to the stack's own
// parameters, such as rds.force_ssl, is pushed by replacing the group:
// terraform apply -replace=<its address>. Named by prefix and created
// before the old one is destroyed, the new group takes over first, with the
// bound placed on the primary slot's group as at first; run paydr dr status
// after such an apply.) The group's name is in the DR topology.
func (b *builder) clusterParameterGroup(r *region) *aws.RDSClusterParameterGroup {
	name := b.name("payment-cluster-" + string(r.role))
	params := []aws.RDSClusterParameterGroupParameter{
		{Name: tf.S("rds.force_ssl"), Value: tf.S("1"), ApplyMethod: tf.S("immediate")},
	}
	if r.role == primary {
		params = append(params, aws.RDSClusterParameterGroupParameter{
			Name: tf.S(rpoParameter), Value: tf.S(fmt.Sprint(b.cfg.RPOBoundSeconds)), ApplyMethod: tf.S("immediate")})
	}
	pg := aws.NewRDSClusterParameterGroup(r.scope, string(r.role), aws.RDSClusterParameterGroupArgs{
		NamePrefix:  tf.S(name + "-"),
		Family:      tf.S(parameterGroupFamily(b.cfg.DBEngineVersion)),
		Description: tf.S("paydr " + string(r.role) + " cluster: TLS required; rds.global_db_rpo set by paydr dr on the writer's group"),
		Parameter:   params,
		Tags:        b.tags(name),
	})
	pg.Lifecycle(tf.Lifecycle{IgnoreChanges: []string{"parameter"}, CreateBeforeDestroy: true})
	return pg
}

// rpoParameter is Aurora PostgreSQL's bound on loss of a global database's
// writer, in seconds.
const rpoParameter = "rds.global_db_rpo"

// parameterGroupFamily returns the parameter group family of an Aurora
// PostgreSQL engine version: "15.8" is in aurora-postgresql15.
func parameterGroupFamily(version string) string {
	major, _, _ := strings.Cut(version, ".")
	return "aurora-postgresql" + major
}

// database declares the Aurora PostgreSQL Global Database: the global
// cluster, the primary cluster with a writer and a reader, and the secondary
// cluster, which waits for the primary's instances. The master password is
// generated by an ephemeral resource and written, write-only, to the primary
// cluster and to a Secrets Manager secret replicated to the secondary region,
// so it is never in the configuration, the plan or the state.
func (b *builder) database() {
	p := b.primary
	c := b.cfg
	prod := c.Production()

	b.global = aws.NewRDSGlobalCluster(p.scope, "payment", aws.RDSGlobalClusterArgs{
		GlobalClusterIdentifier: tf.S(b.name("payment-global")),
		Engine:                  tf.S("aurora-postgresql"),
		EngineVersion:           tf.S(c.DBEngineVersion),
		StorageEncrypted:        tf.B(true),
		DeletionProtection:      tf.B(prod),
		// The database is named by the primary cluster: database_name here
		// forces replacement whenever a describe does not echo it back, and
		// replacing the global cluster would tear the DR topology down.
	})
	if prod {
		b.global.Lifecycle(tf.Lifecycle{PreventDestroy: true})
	}

	var masterVersion, appVersion *aws.SecretsManagerSecretVersion
	var password tf.String
	b.dbSecret, masterVersion, password = b.dbCredentials("db", "db_master", "payment-db", "Aurora master credentials for the payment ledger",
		dbMasterUser, c.DBPasswordVersion)
	// The processors' own credentials: the application role, which only
	// reads and writes the ledger's rows (paydr/internal/ledger.Provision),
	// its password generated and written like the master's, set on the role
	// by the provisioning function (provisioning.go).
	b.dbAppSecret, appVersion, _ = b.dbCredentials("db_app", "db_app", "payment-db-app",
		"credentials of the processors' database role "+dbAppUser+" (TLS only; no DDL)", dbAppUser, c.DBAppPasswordVersion)
	b.dbSecretVersions = []*aws.SecretsManagerSecretVersion{masterVersion, appVersion}

	if b.local() {
		b.note("local: the cluster instances leave ca_cert_identifier out (moto has no RDS certificate authorities, and setting it cost minutes per instance); PostgreSQL serves paydr up's CA's certificate instead")
	}
	for _, r := range b.regions() {
		sc := r.scope
		id := string(r.role)
		subnetGroup := b.name("payment-db-" + id)
		r.dbSubnetGroup = aws.NewDBSubnetGroup(sc, id, aws.DBSubnetGroupArgs{
			Name:        tf.S(subnetGroup),
			Description: tf.S("private subnets of the " + id + " region"),
			SubnetIDs:   subnetIDs(r.private),
			Tags:        b.tags(subnetGroup),
		})
		r.clusterIdentifier = b.name("payment-cluster-" + id)
		r.clusterParams = b.clusterParameterGroup(r)
		args := aws.RDSClusterArgs{
			ClusterIdentifier:            tf.S(r.clusterIdentifier),
			GlobalClusterIdentifier:      b.global.ID(),
			Engine:                       b.global.Engine(),
			EngineVersion:                b.global.EngineVersion(),
			DBSubnetGroupName:            r.dbSubnetGroup.Name(),
			DBClusterParameterGroupName:  r.clusterParams.Name(),
			VPCSecurityGroupIDs:          tf.SetOf(r.sgDB.ID()),
			StorageEncrypted:             tf.B(true),
			KMSKeyID:                     r.kmsKeyARN,
			BackupRetentionPeriod:        tf.N(7),
			PreferredBackupWindow:        tf.S("03:00-04:00"),
			PreferredMaintenanceWindow:   tf.S("sun:05:00-sun:06:00"),
			DeletionProtection:           tf.B(prod),
			SkipFinalSnapshot:            tf.B(!prod),
			CopyTagsToSnapshot:           tf.B(true),
			EnabledCloudWatchLogsExports: tf.StringSet("postgresql"),
			Tags:                         b.tags(r.clusterIdentifier),
		}
		if prod {
			args.FinalSnapshotIdentifier = tf.S(r.clusterIdentifier + "-final")
		}
		if r.role == primary {
			// Only the cluster created as the writer takes credentials: a
			// secondary cluster rejects a password, and RDS-managed
			// passwords are not supported on global clusters.
			args.DatabaseName = tf.S(dbName)
			args.MasterUsername = tf.S(dbMasterUser)
			args.MasterPasswordWo = password
			args.MasterPasswordWoVersion = tf.N(c.DBPasswordVersion)
		}
		r.cluster = aws.NewRDSCluster(sc, id, args)
		r.cluster.Lifecycle(tf.Lifecycle{
			// global_cluster_identifier and replication_source_identifier
			// follow the writer role, which moves with switchover and
			// failover; the stack never moves it back. engine_version is the
			// global cluster's: an upgrade (a new Config.DBEngineVersion) is
			// applied in place to the global cluster, which upgrades its
			// members, and a member that also planned the change would fail
			// with an inconsistent plan (the provider's documented pattern).
			IgnoreChanges:  []string{"global_cluster_identifier", "replication_source_identifier", "engine_version"},
			PreventDestroy: prod,
		})
		if r.role == secondary {
			// The secondary can join only once the primary has an instance.
			for _, inst := range p.instances {
				r.cluster.DependsOn(inst)
			}
		}
		n := 2
		if r.role == secondary {
			n = 1
		}
		for i := range n {
			ident := fmt.Sprintf("%s-%d", r.clusterIdentifier, i+1)
			// The engine version is pinned (Config.DBEngineVersion) and moved
			// deliberately: an automatic minor upgrade would take the
			// clusters past the pin, and the next plan would try to
			// downgrade them, which RDS refuses. Upgrades of a payment ledger
			// are planned changes, rehearsed in staging, applied to the global
			// cluster (both regions in one operation).
			instArgs := aws.RDSClusterInstanceArgs{
				Identifier:                  tf.S(ident),
				ClusterIdentifier:           r.cluster.ID(),
				InstanceClass:               tf.S(c.DBInstanceClass),
				Engine:                      r.cluster.Engine(),
				EngineVersion:               r.cluster.EngineVersion(),
				DBSubnetGroupName:           r.dbSubnetGroup.Name(),
				PubliclyAccessible:          tf.B(false),
				AutoMinorVersionUpgrade:     tf.B(false),
				PerformanceInsightsEnabled:  tf.B(true),
				PerformanceInsightsKMSKeyID: r.kmsKeyARN,
				Tags:                        b.tags(ident),
			}
			if !b.local() {
				// The server certificate chains to a root of the RDS CA
				// bundle the processor verifies it with (verify-full).
				// Left out locally: see [LocalGaps].
				instArgs.CaCertIdentifier = tf.S(dbCACertIdentifier)
			}
			inst := aws.NewRDSClusterInstance(sc, fmt.Sprintf("%s_%d", id, i+1), instArgs)
			r.instances = append(r.instances, inst)
		}
	}
}

// dbCredentials declares a database user's credentials: a password
// generated ephemerally (never in state) and written write-only, with the
// user name and database, into a secret replicated to the secondary
// region, each copy under its region's key. id names the secret and its
// version, passwordID the ephemeral password; version is the write-only
// version that rotates it. It returns the secret, its version and the
// password, for a write-only attribute.
func (b *builder) dbCredentials(id, passwordID, base, description, user string, version int) (*aws.SecretsManagerSecret, *aws.SecretsManagerSecretVersion, tf.String) {
	p, s := b.primary, b.secondary
	password := aws.NewEphemeralSecretsManagerRandomPassword(p.scope, passwordID, aws.EphemeralSecretsManagerRandomPasswordArgs{
		PasswordLength:     tf.N(40),
		ExcludePunctuation: tf.B(true),
	})
	name := b.name(base)
	secret := aws.NewSecretsManagerSecret(p.scope, id, aws.SecretsManagerSecretArgs{
		Name:        tf.S(name),
		Description: tf.S(description),
		KMSKeyID:    p.kmsKeyARN,
		Replica:     []aws.SecretsManagerSecretReplica{{Region: tf.S(s.name), KMSKeyID: s.kmsKeyARN}},
		Tags:        b.tags(name),
	})
	v := aws.NewSecretsManagerSecretVersion(p.scope, id, aws.SecretsManagerSecretVersionArgs{
		SecretID: secret.ID(),
		SecretStringWo: tf.JSONEncode(tf.Raw(tf.Obj{
			"username": user,
			"password": password.RandomPassword(),
			"dbname":   dbName,
		})),
		SecretStringWoVersion: tf.N(version),
	})
	return secret, v, password.RandomPassword()
}
