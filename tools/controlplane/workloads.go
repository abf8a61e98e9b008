package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

// KWOKNodeAnnotation marks the nodes kwok plays the kubelet of. Taking it off a node is how a
// node "dies": kwok stops renewing its lease and the node lifecycle controller marks it
// NotReady after --node-monitor-grace-period, as it would a real node that stopped reporting.
const KWOKNodeAnnotation = "kwok.x-k8s.io/node"

// workloadOptions are the flags that shape the clusters that run workloads.
type workloadOptions struct {
	nodeMonitorGracePeriod time.Duration
	podEvictionTimeout     time.Duration
}

// component is one of the processes beside a workload cluster's apiserver.
type component struct {
	child
	args []string
}

// workloadCluster is what makes a bare apiserver a cluster that runs workloads:
// kube-controller-manager (Deployments get ReplicaSets and Pods, Jobs complete, the
// service-account token controller runs, nodes that stop reporting go NotReady),
// kube-scheduler (pods get nodes), and kwok (the kubelets of simulated nodes: pods on them
// go Pending → Running → Ready, leases are renewed). Each has its own client certificate and
// kubeconfig; all three are children of this binary, like the apiserver.
type workloadCluster struct {
	cluster    string
	components []*component
}

func newWorkloadCluster(a *apiserver, logDir string, opts workloadOptions) (*workloadCluster, error) {
	cdir := filepath.Join(a.dir, "components")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return nil, err
	}
	kubeconfig := func(user, cn string, orgs ...string) (string, error) {
		cert, key, err := ensureClientCert(a.pki, user, cn, orgs)
		if err != nil {
			return "", fmt.Errorf("cluster %s: %s certificate: %w", a.name, user, err)
		}
		path := filepath.Join(cdir, user+".kubeconfig")
		return path, writeClientKubeconfig(path, a.name, a.server(), a.pki.CACert, cert, key)
	}
	kcm, err := kubeconfig("controller-manager", "system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	sched, err := kubeconfig("scheduler", "system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	// kwok writes node and pod status and node leases, the kubelet's job; the kubelet's own
	// identity (system:node:NAME) is tied to one node, kwok plays many: an admin identity.
	kwok, err := kubeconfig("kwok", "kwok", "system:masters")
	if err != nil {
		return nil, err
	}
	stages := filepath.Join(cdir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, []byte(kwokStages()), 0o644); err != nil {
		return nil, err
	}
	w := &workloadCluster{cluster: a.name}
	add := func(kind string, args ...string) {
		w.components = append(w.components, &component{
			child: child{
				label:   "cluster " + a.name + ": " + kind,
				binary:  a.binary,
				logPath: filepath.Join(logDir, a.name+"-"+kind+".log"),
			},
			args: append([]string{kind}, args...),
		})
	}
	add("controller-manager",
		"--kubeconfig="+kcm,
		"--leader-elect=false",
		"--secure-port=0",
		"--cluster-name="+a.name,
		"--service-account-private-key-file="+a.pki.SAKey,
		"--root-ca-file="+a.pki.CACert,
		// Each controller under its own service account and bootstrap role, as in a real
		// cluster (the controller-manager's own identity may only read and delegate).
		"--use-service-account-credentials=true",
		// Simulated nodes have no CIDRs, clouds or volumes to attach.
		"--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,-persistentvolume-attach-detach-controller",
		"--node-monitor-period=2s",
		"--node-monitor-grace-period="+opts.nodeMonitorGracePeriod.String(),
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--profiling=false",
	)
	add("scheduler",
		"--kubeconfig="+sched,
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
	)
	add("kwok",
		"--kubeconfig="+kwok,
		"--config="+stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+KWOKNodeAnnotation+"=fake",
		"--node-lease-duration-seconds="+strconv.Itoa(leaseSeconds(opts.nodeMonitorGracePeriod)),
		"--cidr=10.244.0.0/16",
		"--node-ip=10.240.0.1",
	)
	return w, nil
}

// leaseSeconds: a node lease renewed well within the grace period, as the kubelet's (40 s
// lease, renewed every 10 s, against a 40 s grace period by default).
func leaseSeconds(grace time.Duration) int {
	if s := int(grace.Seconds()); s > 4 {
		return s
	}
	return 4
}

// BrokenImageTag is the image tag of a container that never gets Ready here: the stand-in for
// a bad image (a real kubelet would report ImagePullBackOff or CrashLoopBackOff). The pod is
// scheduled and stays Pending, so a Deployment rolling it out never completes — what a staged
// rollout's health gate must catch.
const BrokenImageTag = ":broken"

// kwokStages are kwok's own default stages (what `kwokctl` configures): nodes become Ready and
// keep a lease; pods become Ready, complete (Jobs) and go away when deleted — except pods with
// a container whose image ends in BrokenImageTag, which pod-ready leaves alone.
func kwokStages() string {
	docs := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podReadyUnlessBroken(podfast.DefaultPodReady),
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for i, d := range docs {
		docs[i] = strings.TrimSpace(d)
	}
	return strings.Join(docs, "\n---\n") + "\n"
}

// podReadyUnlessBroken adds to kwok's pod-ready stage the requirement that no container's
// image ends in BrokenImageTag. It panics if the stage's shape changed (a kwok upgrade): the
// binary is built by the tests' tooling, so that is seen at once, not as pods that never fail.
func podReadyUnlessBroken(stage string) string {
	const anchor = "  selector:\n    matchExpressions:\n"
	if strings.Count(stage, anchor) != 1 {
		panic("kwok's pod-ready stage has no single selector.matchExpressions to extend")
	}
	requirement := "    - key: '.spec.containers.[] | select(.image | endswith(\"" + BrokenImageTag + "\")) | .name'\n" +
		"      operator: 'DoesNotExist'\n"
	return strings.Replace(stage, anchor, anchor+requirement, 1)
}

// start launches the components (the apiserver is ready); a component that exits within its
// first seconds is an error naming it, with the tail of its log.
func (w *workloadCluster) start(ctx context.Context) error {
	exits := make([]<-chan struct{}, len(w.components))
	for i, c := range w.components {
		exited, err := c.launch(c.args)
		if err != nil {
			return err
		}
		exits[i] = exited
	}
	settle := time.NewTimer(3 * time.Second)
	defer settle.Stop()
	for {
		for i, exited := range exits {
			select {
			case <-exited:
				c := w.components[i]
				return fmt.Errorf("%s exited at start; last lines of %s:\n%s", c.label, c.logPath, tail(c.logPath, 20))
			default:
			}
		}
		select {
		case <-settle.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *workloadCluster) stop(grace time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(w.components))
	for i, c := range w.components {
		wg.Add(1)
		go func(i int, c *component) {
			defer wg.Done()
			errs[i] = c.stop(syscall.SIGTERM, grace)
		}(i, c)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// component is the named one ("controller-manager", "scheduler", "kwok"), or nil.
func (w *workloadCluster) component(kind string) *component {
	for _, c := range w.components {
		if c.args[0] == kind {
			return c
		}
	}
	return nil
}

// state is what fleet.json says of the components: their pids and logs.
func (w *workloadCluster) state() map[string]componentState {
	out := map[string]componentState{}
	for _, c := range w.components {
		out[c.args[0]] = componentState{PID: c.pid(), Log: c.logPath}
	}
	return out
}

type componentState struct {
	PID int    `json:"pid"`
	Log string `json:"log"`
}
