// Command controlplane runs a local fleet of real Kubernetes control planes: one embedded
// etcd and N kube-apiservers, each apiserver a child process of this same binary (the
// apiserver keeps process-global state such as feature gates and metric registries, so
// several in one process would be fragile).
//
// Subcommands:
//
//	controlplane fleet --dir DIR --clusters hub,member-1,member-2
//	    start etcd and one apiserver per cluster, write kubeconfigs, serve a control API,
//	    and run until SIGINT/SIGTERM.
//	controlplane apiserver [kube-apiserver flags]
//	    run one kube-apiserver (used by `fleet`; not meant to be called by hand).
//	controlplane controller-manager | scheduler | kwok [flags]
//	    run one kube-controller-manager, kube-scheduler or kwok (the kubelets of simulated
//	    nodes) beside an apiserver: the components of a cluster that runs workloads
//	    (`fleet --workloads`; not meant to be called by hand).
//	controlplane version
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwoksignals "sigs.k8s.io/kwok/pkg/utils/signals"
)

// kubernetesVersion is the release the binary is built from; keep in step with go.mod.
const kubernetesVersion = "v1.36.3"

// kwokVersion is the kwok release built in (its Kubernetes modules are this release's minor).
const kwokVersion = "v0.8.0"

// etcdVersion is the embedded etcd server; it matches the etcd client the release requires.
const etcdVersion = "v3.6.8"

const usage = `controlplane: a local fleet of real kube-apiservers on an embedded etcd.

Usage:
  controlplane fleet --dir DIR [--clusters hub,member-1] [flags]   start a fleet (see fleet --help)
  controlplane apiserver [kube-apiserver flags]                    run one apiserver (internal)
  controlplane controller-manager|scheduler|kwok [flags]           run one component (internal)
  controlplane version                                             print the versions built in
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "apiserver":
		// cobra reads os.Args[1:]; drop our subcommand so it sees only apiserver flags.
		os.Args = append([]string{"kube-apiserver"}, os.Args[2:]...)
		cmd := app.NewAPIServerCommand()
		os.Exit(cli.Run(cmd))
	case "controller-manager":
		os.Args = append([]string{"kube-controller-manager"}, os.Args[2:]...)
		os.Exit(cli.Run(kcm.NewControllerManagerCommand()))
	case "scheduler":
		os.Args = append([]string{"kube-scheduler"}, os.Args[2:]...)
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kwok":
		os.Args = append([]string{"kwok"}, os.Args[2:]...)
		os.Exit(runKWOK())
	case "fleet":
		os.Exit(runFleet(os.Args[2:]))
	case "version":
		fmt.Printf("kubernetes %s\netcd %s\nkwok %s\n", kubernetesVersion, etcdVersion, kwokVersion)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown subcommand %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

// runKWOK is kwok's own main (cmd/kwok): its flags are read from os.Args by its config and log
// packages before the command parses the rest.
func runKWOK() int {
	// The Kubernetes packages built in register their own flags on the global set at init
	// (component-base's --version, of its own type); cobra adds that set to every command, and
	// kwok's bool --version then fails. kwok uses none of them: start it from an empty one.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}
	ctx := kwoksignals.SetupSignalContext()
	ctx, logger := kwoklog.InitFlags(ctx, flagset)
	ctx, err := kwokconfig.InitFlags(ctx, flagset)
	if err != nil {
		logger.Error("kwok: reading its configuration", "err", err)
		return 1
	}
	command := kwokcmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("kwok: exited", "err", err)
		return 1
	}
	return 0
}
