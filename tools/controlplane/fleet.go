package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fleetOptions are the flags of `controlplane fleet`.
type fleetOptions struct {
	dir          string
	clusters     []string
	readyTimeout time.Duration
	stopTimeout  time.Duration
	etcdPort     int
	ports        map[string]int
	extraArgs    map[string][]string // "" holds the arguments for every cluster
	progress     string
	// startConcurrency is how many apiservers start at once.
	startConcurrency int
	// workloads are the clusters that also run a controller-manager, a scheduler and kwok.
	workloads    map[string]bool
	workloadOpts workloadOptions
}

// defaultStartConcurrency: twice the cores, at least 4 (a test fleet of hub + 3 starts at once).
func defaultStartConcurrency() int {
	if n := 2 * runtime.NumCPU(); n > 4 {
		return n
	}
	return 4
}

const fleetUsage = `controlplane fleet: start a local fleet and run until SIGINT/SIGTERM.

Starts one embedded etcd and one kube-apiserver per cluster (each its own child process,
its own --etcd-prefix, CA, serving certificate, admin client certificate in group
system:masters, and service-account keys; RBAC authorization on). Writes one kubeconfig per
cluster to DIR/kubeconfigs/NAME.yaml, a merged DIR/kubeconfig with a context per cluster, and
DIR/fleet.json describing the running fleet (ports, pids, logs, the control API address).

The control API (address in fleet.json) lets tests inject faults:
  GET  /status                        the fleet as JSON
  POST /clusters/NAME/stop?signal=KILL stop one apiserver (TERM by default), wait for its exit
  POST /clusters/NAME/start           start it again on the same port, wait for /readyz
  POST /clusters/NAME/components/KIND/stop|start
                                      stop or start a workload cluster's controller-manager,
                                      scheduler or kwok (kwok stopped: every node stops reporting)
  POST /etcd/compact                  compact etcd to its current revision (forces 410 Gone)

Example:
  controlplane fleet --dir /tmp/fleet --clusters hub,member-1,member-2

Flags:
`

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func parseFleetFlags(args []string) (*fleetOptions, error) {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), fleetUsage)
		fs.PrintDefaults()
	}
	o := &fleetOptions{ports: map[string]int{}, extraArgs: map[string][]string{}, workloads: map[string]bool{}}
	var clusters, ports, workloads string
	var extra repeated
	fs.StringVar(&o.dir, "dir", "", "state directory (etcd data, PKI, kubeconfigs, logs); required")
	fs.StringVar(&clusters, "clusters", "hub,member-1", "comma-separated cluster names")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 120*time.Second, "how long each apiserver may take to report /readyz ok")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 15*time.Second, "grace period after SIGTERM before an apiserver is killed")
	fs.IntVar(&o.etcdPort, "etcd-port", 0, "etcd client port (0 picks a free one)")
	fs.StringVar(&ports, "ports", "", "fixed apiserver ports, e.g. hub=6443,member-1=6444 (others pick a free one)")
	fs.Var(&extra, "apiserver-arg", "extra kube-apiserver flag for every cluster (--flag=v) or one cluster (NAME:--flag=v); repeatable")
	fs.StringVar(&o.progress, "progress", "text", "progress output on stdout: text or json (one event per line)")
	fs.IntVar(&o.startConcurrency, "start-concurrency", defaultStartConcurrency(), "apiservers starting at once (the others wait their turn; each one's --ready-timeout counts from its own start)")
	fs.StringVar(&workloads, "workloads", "", "clusters that run workloads: a kube-controller-manager, a kube-scheduler and kwok (simulated nodes) beside the apiserver, e.g. member-1,member-2 (nodes are created by the client: annotate them "+KWOKNodeAnnotation+"=fake)")
	fs.DurationVar(&o.workloadOpts.nodeMonitorGracePeriod, "node-monitor-grace-period", 20*time.Second, "how long a node may go without renewing its lease before the controller-manager marks it NotReady (kube-controller-manager's flag; 40s in a real cluster)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.dir == "" {
		return nil, errors.New("--dir is required")
	}
	if o.startConcurrency < 1 {
		return nil, fmt.Errorf("--start-concurrency must be at least 1, not %d", o.startConcurrency)
	}
	if o.progress != "text" && o.progress != "json" {
		return nil, fmt.Errorf("--progress must be text or json, not %q", o.progress)
	}
	seen := map[string]bool{}
	for _, c := range strings.Split(clusters, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !validName(c) {
			return nil, fmt.Errorf("--clusters: %q is not a valid cluster name (lowercase letters, digits and '-')", c)
		}
		if seen[c] {
			return nil, fmt.Errorf("--clusters: %q appears twice", c)
		}
		seen[c] = true
		o.clusters = append(o.clusters, c)
	}
	if len(o.clusters) == 0 {
		return nil, errors.New("--clusters: at least one cluster is needed")
	}
	if ports != "" {
		for _, kv := range strings.Split(ports, ",") {
			name, port, ok := strings.Cut(kv, "=")
			var n int
			if _, err := fmt.Sscanf(port, "%d", &n); !ok || err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("--ports: %q is not NAME=PORT", kv)
			}
			if !seen[name] {
				return nil, fmt.Errorf("--ports: %q is not one of --clusters", name)
			}
			o.ports[name] = n
		}
	}
	for _, c := range strings.Split(workloads, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !seen[c] {
			return nil, fmt.Errorf("--workloads: %q is not one of --clusters", c)
		}
		o.workloads[c] = true
	}
	for _, a := range extra {
		if strings.HasPrefix(a, "--") {
			o.extraArgs[""] = append(o.extraArgs[""], a)
			continue
		}
		name, flagArg, ok := strings.Cut(a, ":")
		if !ok || !seen[name] || !strings.HasPrefix(flagArg, "--") {
			return nil, fmt.Errorf("--apiserver-arg: %q is neither --flag=v nor CLUSTER:--flag=v", a)
		}
		o.extraArgs[name] = append(o.extraArgs[name], flagArg)
	}
	return o, nil
}

func validName(s string) bool {
	for i, r := range s {
		ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || (r == '-' && i > 0 && i < len(s)-1)
		if !ok {
			return false
		}
	}
	return len(s) > 0 && len(s) <= 63
}

// reporter prints progress either for people or, one JSON object per line, for the Python
// fleet API that starts us.
type reporter struct {
	mu   sync.Mutex
	json bool
}

func (r *reporter) event(kind string, fields map[string]any, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if r.json {
		out := map[string]any{"event": kind, "message": msg, "time": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range fields {
			out[k] = v
		}
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
		return
	}
	fmt.Printf("controlplane: %s\n", msg)
}

// fleetState is what DIR/fleet.json holds for clients of a running fleet.
type fleetState struct {
	PID               int                     `json:"pid"`
	Dir               string                  `json:"dir"`
	ControlURL        string                  `json:"controlURL"`
	EtcdURL           string                  `json:"etcdURL"`
	Kubeconfig        string                  `json:"kubeconfig"`
	KubernetesVersion string                  `json:"kubernetesVersion"`
	EtcdVersion       string                  `json:"etcdVersion"`
	Clusters          map[string]clusterState `json:"clusters"`
}

type clusterState struct {
	Name       string `json:"name"`
	Server     string `json:"server"`
	Port       int    `json:"port"`
	Kubeconfig string `json:"kubeconfig"`
	Log        string `json:"log"`
	PID        int    `json:"pid"`
	Running    bool   `json:"running"`
	EtcdPrefix string `json:"etcdPrefix"`
	// Components: a workload cluster's controller-manager, scheduler and kwok.
	Components map[string]componentState `json:"components,omitempty"`
}

func runFleet(args []string) int {
	o, err := parseFleetFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "controlplane fleet: %v\n", err)
		return 2
	}
	rep := &reporter{json: o.progress == "json"}
	if err := fleetMain(o, rep); err != nil {
		rep.event("error", nil, "error: %v", err)
		fmt.Fprintf(os.Stderr, "controlplane fleet: %v\n", err)
		return 1
	}
	return 0
}

func fleetMain(o *fleetOptions, rep *reporter) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	statePath := filepath.Join(dir, "fleet.json")
	_ = os.Remove(statePath)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = exitWithParent(ctx)

	self, err := os.Executable()
	if err != nil {
		return err
	}

	// Choose every port before starting anything, so a conflict fails fast and clearly.
	etcdPort, err := choosePort("etcd", o.etcdPort, filepath.Join(dir, "etcd.port"))
	if err != nil {
		return err
	}
	peerPort, err := choosePort("etcd-peer", 0, "")
	if err != nil {
		return err
	}
	members := make([]*apiserver, 0, len(o.clusters))
	for _, name := range o.clusters {
		cdir := filepath.Join(dir, "clusters", name)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return err
		}
		port, err := choosePort(name, o.ports[name], filepath.Join(cdir, "port"))
		if err != nil {
			return err
		}
		pki, err := ensurePKI(filepath.Join(cdir, "pki"), name)
		if err != nil {
			return fmt.Errorf("cluster %s: creating certificates: %w", name, err)
		}
		args := append(append([]string{}, o.extraArgs[""]...), o.extraArgs[name]...)
		members = append(members, &apiserver{
			child: child{
				label:   "cluster " + name + ": apiserver",
				binary:  self,
				logPath: filepath.Join(dir, "logs", name+".log"),
			},
			name:       name,
			port:       port,
			pki:        pki,
			dir:        cdir,
			extraArgs:  args,
			kubeconfig: filepath.Join(dir, "kubeconfigs", name+".yaml"),
			workloads:  o.workloads[name],
		})
	}

	started := time.Now()
	etcd, err := startEtcd(filepath.Join(dir, "etcd"), etcdPort, peerPort)
	if err != nil {
		return err
	}
	defer etcd.close()
	rep.event("etcd-ready", map[string]any{"url": etcd.clientURL}, "etcd %s ready at %s (%.1fs)", etcdVersion, etcd.clientURL, time.Since(started).Seconds())

	defer func() {
		// Shield the teardown from the signal that triggered it: always stop every child.
		var wg sync.WaitGroup
		for _, m := range members {
			wg.Add(1)
			go func(m *apiserver) {
				defer wg.Done()
				if m.work != nil {
					if err := m.work.stop(o.stopTimeout); err != nil {
						rep.event("warning", map[string]any{"cluster": m.name}, "stopping %s's components: %v", m.name, err)
					}
				}
				if err := m.stop(syscall.SIGTERM, o.stopTimeout); err != nil {
					rep.event("warning", map[string]any{"cluster": m.name}, "stopping %s: %v", m.name, err)
				}
			}(m)
		}
		wg.Wait()
		_ = os.Remove(statePath)
		rep.event("stopped", nil, "fleet stopped")
	}()

	// Start the apiservers in parallel, --start-concurrency at a time: waiting in parallel is
	// what makes a warm start fast, but an apiserver's start is mostly CPU, and 40 of them at
	// once on 2 cores each took longer than its --ready-timeout.
	errs := make(chan error, len(members))
	slots := make(chan struct{}, o.startConcurrency)
	for _, m := range members {
		go func(m *apiserver) {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			defer func() { <-slots }()
			t0 := time.Now()
			if err := m.start(ctx, etcd.clientURL, o.readyTimeout); err != nil {
				errs <- err
				return
			}
			if m.workloads {
				if err := m.startWorkloads(ctx, filepath.Join(dir, "logs"), o.workloadOpts); err != nil {
					errs <- err
					return
				}
			}
			rep.event("cluster-ready", map[string]any{"cluster": m.name, "server": m.server(), "seconds": time.Since(t0).Seconds()},
				"%s ready at %s (%.1fs)", m.name, m.server(), time.Since(t0).Seconds())
			errs <- nil
		}(m)
	}
	var firstErr error
	for range members {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if ctx.Err() != nil {
		return errors.New("interrupted while starting")
	}

	kubeconfig, err := writeKubeconfigs(dir, members)
	if err != nil {
		return err
	}

	ctl := &controlServer{etcd: etcd, members: map[string]*apiserver{}, readyTimeout: o.readyTimeout, stopTimeout: o.stopTimeout, rep: rep}
	for _, m := range members {
		ctl.members[m.name] = m
	}
	controlURL, err := ctl.serve(ctx)
	if err != nil {
		return err
	}
	ctl.state = func() fleetState {
		st := fleetState{
			PID: os.Getpid(), Dir: dir, ControlURL: controlURL, EtcdURL: etcd.clientURL,
			Kubeconfig: kubeconfig, KubernetesVersion: kubernetesVersion, EtcdVersion: etcdVersion,
			Clusters: map[string]clusterState{},
		}
		for _, m := range members {
			st.Clusters[m.name] = m.state()
		}
		return st
	}
	if err := writeJSONAtomic(statePath, ctl.state()); err != nil {
		return err
	}
	names := make([]string, 0, len(members))
	for _, m := range members {
		names = append(names, m.name)
	}
	sort.Strings(names)
	rep.event("ready", map[string]any{"state": statePath, "kubeconfig": kubeconfig, "seconds": time.Since(started).Seconds()},
		"fleet ready in %.1fs: %s; KUBECONFIG=%s kubectl --context %s get ns",
		time.Since(started).Seconds(), strings.Join(names, ", "), kubeconfig, names[len(names)-1])

	<-ctx.Done()
	rep.event("stopping", nil, "signal received, stopping the fleet")
	return nil
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lockDir makes a second fleet on the same state directory fail at once with the pid of
// the first, instead of two etcds fighting over one data directory.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, "fleet.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "unknown"
		}
		return nil, fmt.Errorf("state directory %s is already in use by a running fleet (pid %s); stop it first or use another directory", dir, holder)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// exitWithParent cancels ctx when the process that started us goes away (we get re-parented),
// so a test session killed with SIGKILL never leaves a fleet holding its ports.
func exitWithParent(ctx context.Context) context.Context {
	parent := os.Getppid()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != parent {
					cancel()
					return
				}
			}
		}
	}()
	return ctx
}
