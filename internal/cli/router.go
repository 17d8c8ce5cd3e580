package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"paydr/internal/local/router"
)

// newRouterCmd is the hidden host of the local failover router that paydr up
// starts in the background.
func newRouterCmd() *cobra.Command {
	var (
		listen string
		cfg    router.Config
	)
	cmd := &cobra.Command{
		Use:    "router",
		Short:  "Run the local failover router (started by paydr up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, _, err := net.SplitHostPort(listen)
			if err != nil || !net.ParseIP(host).IsLoopback() {
				return usageError{fmt.Errorf("router: --listen %q is not a loopback address such as 127.0.0.1:8080; the local router listens on loopback only", listen)}
			}
			enc := json.NewEncoder(cmd.ErrOrStderr())
			cfg.OnEvent = func(e router.Event) { _ = enc.Encode(e) }
			srv, err := router.Listen(listen, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "router: listening on %s: primary %s %s, secondary %s %s, every %s, threshold %d\n",
				srv.URL(), cfg.Primary.Name, cfg.Primary.URL, cfg.Secondary.Name, cfg.Secondary.URL, cfg.Interval, cfg.FailureThreshold)
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Close(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (loopback)")
	f.StringVar(&cfg.Primary.URL, "primary", "", "base URL of the primary region's processor")
	f.StringVar(&cfg.Primary.Name, "primary-name", "primary", "name of the primary target (its region)")
	f.StringVar(&cfg.Secondary.URL, "secondary", "", "base URL of the secondary region's processor")
	f.StringVar(&cfg.Secondary.Name, "secondary-name", "secondary", "name of the secondary target (its region)")
	f.DurationVar(&cfg.Interval, "interval", router.DefaultInterval, "health-check interval (Route 53 request_interval)")
	f.IntVar(&cfg.FailureThreshold, "failure-threshold", router.DefaultFailureThreshold, "consecutive failed checks before a target is unhealthy")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "timeout of one health check (default the interval, at most 2s)")
	return cmd
}
