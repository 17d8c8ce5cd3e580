package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"paydr/internal/local/faultproxy"
	"paydr/internal/processor/environ"
)

func newFaultProxyCmd() *cobra.Command {
	var (
		upstream string
		listen   string
		routes   []string
	)
	cmd := &cobra.Command{
		Use:   "fault-proxy",
		Short: "Serve a proxy in front of the AWS emulator that takes regions away (refuse, black-hole, latency, throttle)",
		Long: `Serve, until interrupted, a reverse proxy in front of the AWS emulator (moto)
that injects regional faults by each request's SigV4 region and service. Point
clients at the URL it prints (paydr dr --endpoint URL, or PAYDR_AWS_ENDPOINT);
set faults through its control API, the first matching rule applying:

  curl -X PUT URL/_faultproxy/rules -d '[{"region":"us-east-1","fault":"blackhole"}]'
  curl -X PUT URL/_faultproxy/rules -d '[{"region":"us-west-2","service":"lambda","fault":"latency","delay":"2s"}]'
  curl URL/_faultproxy/rules; curl URL/_faultproxy/requests
  curl -X DELETE URL/_faultproxy/rules

Faults: refuse (503), reset (connection closed), blackhole (held until the
client gives up), latency (with delay), throttle (a throttling error the SDKs
retry). A rule for us-east-1 also takes Route 53, IAM, CloudFront and the STS
global endpoint away, as losing us-east-1 does. It listens on loopback only (or a netns fabric bridge address).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := faultproxy.Options{Upstream: upstream, Listen: listen, Routes: map[string]string{}}
			for _, r := range routes {
				svc, u, ok := strings.Cut(r, "=")
				if !ok || svc == "" || u == "" {
					return usageError{fmt.Errorf("fault-proxy: --route %q is not SERVICE=URL, such as rds=http://127.0.0.1:5001", r)}
				}
				opts.Routes[svc] = u
			}
			if upstream == "" {
				return usageError{fmt.Errorf("fault-proxy: --upstream is required (or PAYDR_AWS_ENDPOINT): the emulator's URL, such as http://127.0.0.1:5000")}
			}
			p, err := faultproxy.Start(opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fault proxy %s in front of %s; rules: PUT %s%srules; stop with Ctrl-C\n", p.URL(), upstream, p.URL(), faultproxy.ControlPath)
			<-cmd.Context().Done()
			return p.Close()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&upstream, "upstream", envOr(environ.AWSEndpoint, ""), "the emulator's URL ($PAYDR_AWS_ENDPOINT)")
	fl.StringVar(&listen, "listen", "127.0.0.1:0", "loopback (or netns fabric bridge) address to listen on (port 0 picks a free one)")
	fl.StringArrayVar(&routes, "route", nil, "SERVICE=URL: send a service's requests to another upstream (repeatable)")
	return cmd
}
