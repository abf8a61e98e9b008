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
//	controlplane version
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// kubernetesVersion is the release the binary is built from; keep in step with go.mod.
const kubernetesVersion = "v1.36.3"

// etcdVersion is the embedded etcd server; it matches the etcd client the release requires.
const etcdVersion = "v3.6.8"

const usage = `controlplane: a local fleet of real kube-apiservers on an embedded etcd.

Usage:
  controlplane fleet --dir DIR [--clusters hub,member-1] [flags]   start a fleet (see fleet --help)
  controlplane apiserver [kube-apiserver flags]                    run one apiserver (internal)
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
	case "fleet":
		os.Exit(runFleet(os.Args[2:]))
	case "version":
		fmt.Printf("kubernetes %s\netcd %s\n", kubernetesVersion, etcdVersion)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown subcommand %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
