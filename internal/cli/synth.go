package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"paydr/internal/bundle"
	"paydr/internal/stack"
)

// stackFlags binds the stack configuration to flags whose defaults come from
// the earlier pipeline's environment variables.
type stackFlags struct {
	cfg          stack.Config
	out          string
	processorZip string
	noDMS        bool
	target       string
}

func (f *stackFlags) register(fs *pflag.FlagSet) {
	f.cfg = stack.FromEnv(nil)
	c := &f.cfg
	fs.StringVar(&f.out, "out", "cdktf.out", "root of the synthesized output: <out>/stacks/<StackName>/cdk.tf.json")
	fs.StringVar(&c.EnvironmentSuffix, "suffix", c.EnvironmentSuffix, "environment suffix ending every resource name (env ENVIRONMENT_SUFFIX)")
	fs.StringVar(&c.StateBucket, "state-bucket", c.StateBucket, "S3 bucket of the Terraform state (env TERRAFORM_STATE_BUCKET)")
	fs.StringVar(&c.StateBucketRegion, "state-bucket-region", c.StateBucketRegion, "region of the state bucket (env TERRAFORM_STATE_BUCKET_REGION)")
	fs.StringVar(&c.PrimaryRegion, "primary-region", c.PrimaryRegion, "region of the writer")
	fs.StringVar(&c.SecondaryRegion, "secondary-region", c.SecondaryRegion, "region of the standby")
	fs.StringVar(&c.Route53Domain, "domain", c.Route53Domain, "hosted zone (env ROUTE53_DOMAIN; default migration-<suffix>.internal)")
	fs.StringVar(&c.Route53ZoneID, "zone-id", c.Route53ZoneID, "existing public hosted zone of --domain, such as Z0123456789ABCDEFGHIJ; unset: the stack creates the zone (env ROUTE53_ZONE_ID)")
	fs.StringVar(&c.Repository, "repository", c.Repository, "Repository tag (env REPOSITORY)")
	fs.StringVar(&c.CommitAuthor, "author", c.CommitAuthor, "Author tag (env COMMIT_AUTHOR)")
	fs.StringVar(&c.PRNumber, "pr-number", c.PRNumber, "PRNumber tag (env PR_NUMBER)")
	fs.StringVar(&c.Team, "team", c.Team, "Team tag (env TEAM)")
	fs.StringVar(&c.CreatedAt, "created-at", c.CreatedAt, "CreatedAt tag, only when given (env CREATED_AT)")
	fs.StringVar(&c.DBInstanceClass, "db-instance-class", c.DBInstanceClass, "Aurora instance class")
	fs.StringVar(&c.DBEngineVersion, "db-engine-version", c.DBEngineVersion, "Aurora PostgreSQL engine version")
	fs.IntVar(&c.DBPasswordVersion, "db-password-version", c.DBPasswordVersion, "bump to rotate the Aurora master password")
	fs.IntVar(&c.DBAppPasswordVersion, "db-app-password-version", c.DBAppPasswordVersion, "bump to rotate the password of the processors' database role (payment_app)")
	fs.IntVar(&c.APIKeyVersion, "api-key-version", c.APIKeyVersion, "bump to rotate the payments API key (both regions)")
	fs.IntVar(&c.RPOBoundSeconds, "rpo-bound-seconds", c.RPOBoundSeconds, "bound on loss in seconds (rds.global_db_rpo on the writer, at least 20; paydr dr moves it with the writer)")
	fs.BoolVar(&f.noDMS, "no-dms", false, "leave DMS out")
	fs.BoolVar(&c.DMSCreateVPCRole, "dms-create-vpc-role", c.DMSCreateVPCRole, "create the account-wide dms-vpc-role (one environment per account)")
	fs.IntVar(&c.HealthCheckInterval, "health-check-interval", c.HealthCheckInterval, "Route 53 health check interval in seconds (10 or 30)")
	fs.IntVar(&c.HealthCheckFailureThreshold, "health-check-failure-threshold", c.HealthCheckFailureThreshold, "failed checks before a region is unhealthy")
	fs.StringVar(&f.target, "target", string(c.Target), "aws, or local (the emulator)")
	fs.StringVar(&c.Endpoint, "endpoint", "", "emulator URL, for --target local: the providers reach it through AWS_ENDPOINT_URL, which paydr up sets; the configuration's comment names it")
	fs.StringVar(&f.processorZip, "processor-zip", "", "use this processor zip instead of building one")
}

// config returns the validated configuration.
func (f *stackFlags) config() stack.Config {
	c := f.cfg
	c.EnableDMS = !f.noDMS
	c.Target = stack.Target(f.target)
	return c
}

// synthResult is what synthesis wrote.
type synthResult struct {
	Dir       string
	File      string
	Resources int
	Notes     []string
	Elapsed   time.Duration
}

// synthesize builds the stack and writes it, cdk.tf.json and the processor
// zip, into <out>/stacks/<StackName>/ (stack.WriteDir), and returns where.
func synthesize(ctx context.Context, f *stackFlags, log io.Writer) (*synthResult, error) {
	cfg := f.config()
	start := time.Now()
	st, err := stack.Build(cfg)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	zip, err := processorZip(ctx, f, log)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(f.out, "stacks", cfg.StackName())
	start = time.Now()
	file, err := st.WriteDir(dir, zip)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	elapsed += time.Since(start)
	return &synthResult{Dir: dir, File: file, Resources: st.Resources(), Notes: st.Notes, Elapsed: elapsed}, nil
}

// processorZip returns the path of the processor's Lambda zip:
// --processor-zip's, or one built into <out>/build.
func processorZip(ctx context.Context, f *stackFlags, log io.Writer) (string, error) {
	if f.processorZip != "" {
		zf, err := os.Open(f.processorZip)
		if err != nil {
			return "", fmt.Errorf("synth: --processor-zip: %w", err)
		}
		zf.Close()
		return f.processorZip, nil
	}
	art, err := bundle.Build(ctx, bundle.Options{OutDir: filepath.Join(f.out, "build"), Progress: log, SharedCache: bundle.SharedCacheDir()})
	if err != nil {
		return "", fmt.Errorf("synth: build processor: %w (run paydr from its checkout, or pass --processor-zip)", err)
	}
	return art.ZipPath, nil
}

func newSynthCmd() *cobra.Command {
	var f stackFlags
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Synthesize the DR stack as Terraform JSON (cdktf.out/stacks/<StackName>/cdk.tf.json)",
		Long: `Synthesize the two-region DR stack as Terraform JSON, after checking it against
the preflight rules (mistakes AWS would refuse at apply time). The processor's
Lambda zip is built beside it. Flags default to the earlier pipeline's
environment variables: ENVIRONMENT_SUFFIX, TERRAFORM_STATE_BUCKET,
TERRAFORM_STATE_BUCKET_REGION, REPOSITORY, COMMIT_AUTHOR, PR_NUMBER, TEAM,
ROUTE53_DOMAIN, ROUTE53_ZONE, ROUTE53_ZONE_ID, CREATED_AT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := synthesize(cmd.Context(), &f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			printSynth(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func printSynth(w io.Writer, res *synthResult) {
	fmt.Fprintf(w, "synthesized %d resources in %s -> %s\n", res.Resources, res.Elapsed.Round(time.Microsecond), res.File)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}
