// Command paydr-aws is the paydr command line with its AWS backends linked
// in: the commands that call AWS APIs (paydr dr, paydr serve) run here. The
// paydr command runs it for them, found beside paydr or built in paydr's
// checkout (see paydr/internal/cli.ExecBackends), so that paydr's other
// commands do not pay the AWS SDK's package initialisation. It takes every
// paydr command and flag.
package main

import (
	"os"

	"paydr/internal/cli"
	"paydr/internal/cli/awsapi"
)

func main() { os.Exit(cli.Main(awsapi.Backends())) }
