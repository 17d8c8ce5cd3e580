// Package local runs the whole paydr system on one machine: the DR stack
// applied by Terraform to the AWS API emulator (moto), a PostgreSQL primary
// and streaming standby standing in for the Aurora global database, the
// payment processor of each region, and a failover router standing in for
// Route 53. It is what paydr up, paydr down and paydr status do.
//
// Everything lives in a state directory (default .paydr/local, or
// $PAYDR_STATE_DIR): data directories, logs, pid files, the Terraform
// working directory, and env.json, the manifest, which records what runs
// where. Both are package env: env.Manifest and env.Layout. Regions are kept
// by slot ("primary", "secondary"): the processor of a slot always talks to
// the database of that slot, while which slot holds the writer is data
// (env.Database.Role) that DR operations change.
//
// Long-lived processes are started detached by package daemon (their own
// session, logs and pid files in the state directory) and outlive paydr up,
// like docker compose up -d; paydr down stops every one of them from the pid
// files and the manifest. The router is read through router.Client, the
// fault proxy's control API through faultproxy.Client.
//
// With paydr up --fault-proxy, a fault proxy (package faultproxy, run as
// paydr fault-proxy) stands between the processors and the emulator, so an
// outage of one region can be staged through its control API;
// env.Manifest.AWSEndpoint is the endpoint local clients use either way.
//
// With network namespaces (paydr up --netns, package netns; the default when
// paydr runs as root), each region's database, processor and other daemons
// run in a namespace of their own, joined by a veth pair to a bridge in the
// host namespace with a private /24: they listen on the region's address
// (env.Region.Address), the emulator and the fault proxy on the bridge's
// (env.Manifest.Network.Gateway), and the router, in the host namespace,
// calls the processors at their region addresses. The drill fault partition
// sets a region's link down while its processes keep running (network.go).
// Without namespaces everything listens on the host's 127.0.0.1.
//
// Up is a table of steps (upRun.plan), each a named entry run by one loop:
// checks (prereq.go, databases.go), the namespaces (network.go), starting or adopting the processes
// (start.go, faultproxy.go), the stack and its zip (synth.go), Terraform
// (apply.go), and the waits (wait.go).
package local
