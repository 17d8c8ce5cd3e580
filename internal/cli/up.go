package cli

import (
	"github.com/spf13/cobra"

	"paydr/internal/local"
	"paydr/internal/local/env"
)

func newUpCmd(b Backends) *cobra.Command {
	var o local.UpOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole system locally: the stack on moto, PostgreSQL writer and standby, both processors, a failover router",
		Long: `Bring up the local environment, both regions on one machine, and return once
payments flow (like docker compose up -d):

  - moto_server on loopback, one endpoint for every AWS service of both regions;
  - the DR stack synthesized for the local target and applied with Terraform
    (offline provider mirror; progress and the slowest resources are shown,
    the full log is in <state-dir>/logs/terraform.log);
  - a PostgreSQL primary and a streaming standby standing in for the Aurora
    writer and secondary regions;
  - the payment processor of each region (paydr serve), each on its own
    slot's database;
  - a failover router doing what the Route 53 failover records do.

Everything started keeps running after paydr up exits; its pid files, logs and
env.json (what runs where, for scripts) are in the state directory. paydr up
again adopts what runs and re-applies only when the stack changed or the
emulator was restarted. Ctrl-C stops what the interrupted run started.

After paydr dr switchover, failover or failback, each database restarts in
the role env.json records. paydr up first checks the data directories
against those roles and starts nothing when they disagree: a fenced old
writer is never started beside the new one (run paydr dr failback, which
keeps a copy of its data and rebuilds it as a standby).
What the emulator cannot do is listed as "gap:" lines. Stop with paydr down.

--fault-proxy also runs paydr fault-proxy in front of moto, with no rules,
and points the processors at it (Terraform still applies straight to moto);
env.json records its URL and control URL. Take a region away and give it back:

  curl -X PUT <proxy>/_faultproxy/rules -d '[{"region":"us-east-1","fault":"blackhole"}]'
  curl -X DELETE <proxy>/_faultproxy/rules

(see paydr fault-proxy --help for the faults). paydr up without it stops a
proxy an earlier run left.

--netns (auto, on, off) places each region's database and processor in a
network namespace of its own, joined to a bridge in the host namespace by a
veth pair: they listen on the region's private address, moto and the fault
proxy on the bridge's, the router stays on 127.0.0.1. The drill fault
partition needs it: it cuts a region's link while its processes keep running.
Namespaces need root and iproute2; auto uses them when they can be made (for a
new environment) and otherwise says why. An environment keeps its mode: run
paydr down before changing it. paydr down deletes the namespaces and bridge.

--rpo-bound (default 5m, the mission's RPO) bounds what losing the writer
region loses, as rds.global_db_rpo does on Aurora: an RPO guard per region
(logs/rpo-guard-<slot>.log) watches the writer's WAL and how far the standby
has flushed it, and once the oldest commit the standby lacks is about the
bound old, makes commits wait for the standby (synchronous_standby_names)
until it is back within half the bound. 0 means RPO 0: every commit waits for
the standby. paydr up again applies a changed bound; paydr dr relax-rpo and
enforce-rpo steps move it with the writer.

Once the stack is applied, moto enforces IAM: each processor runs on its
region's processor role (assumed as Lambda assumes it), DR commands and drills
on the DR automation role, paydr's other calls on an operator user
(paydr-operator-<suffix>); env.json records the credentials (moto's, worthless
elsewhere). A call the code makes that the stack does not grant is refused as
on AWS. moto checks actions, not resources (the stack's static tests check
those). --no-iam leaves IAM off.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			o.RPOZero = cmd.Flags().Changed("rpo-bound") && o.RPOBound == 0
			if !o.NoIAM {
				// In paydr, this runs the command again in paydr-aws.
				ids, err := b.Identities(cmd.Context())
				if err != nil {
					return err
				}
				o.Identities = ids
			}
			_, err := local.Up(cmd.Context(), o)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.StateDir, "state-dir", env.StateDirFromEnv(), "state directory (env "+env.EnvStateDir+")")
	f.StringVar(&o.Suffix, "suffix", local.DefaultSuffix, "environment suffix of the local stack")
	f.BoolVar(&o.FaultProxy, "fault-proxy", false, "run a fault proxy in front of moto and point the processors at it")
	f.IntVar(&o.RouterPort, "router-port", 0, "router port on 127.0.0.1 (0: the last one, else a free one)")
	f.DurationVar(&o.HealthInterval, "health-interval", local.DefaultHealthInterval, "router health-check interval (Route 53 request_interval, shortened locally)")
	f.IntVar(&o.FailureThreshold, "failure-threshold", local.DefaultFailureThreshold, "consecutive failed checks before a region is unhealthy (1-10)")
	f.DurationVar(&o.ApplyTimeout, "apply-timeout", local.DefaultApplyTimeout, "deadline of terraform apply")
	f.IntVar(&o.Parallelism, "parallelism", local.DefaultParallelism, "terraform apply -parallelism")
	f.StringVar(&o.ProcessorZip, "processor-zip", "", "use this processor Lambda zip instead of building one")
	f.StringVar((*string)(&o.Netns), "netns", string(local.NetnsAuto), "run each region in its own network namespace: auto, on or off")
	f.BoolVar(&o.NoIAM, "no-iam", false, "leave IAM unenforced on moto: every component uses moto's test credentials")
	f.DurationVar(&o.RPOBound, "rpo-bound", local.DefaultRPOBound, "bound on loss: commits wait for the standby once it lags this much (at least 1s; 0: always, synchronous replication)")
	return cmd
}
