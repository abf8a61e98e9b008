package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// apiserver supervises one cluster's kube-apiserver child process.
type apiserver struct {
	child
	name       string
	port       int
	pki        clusterPKI
	dir        string
	extraArgs  []string
	kubeconfig string // this cluster's own kubeconfig, written once the fleet is ready
	// workloads: the cluster runs a controller-manager, a scheduler and kwok beside the
	// apiserver, so the ServiceAccount admission plugin stays on (the token controller runs).
	workloads bool
	work      *workloadCluster // its components, once started
}

// startWorkloads starts the cluster's controller-manager, scheduler and kwok.
func (a *apiserver) startWorkloads(ctx context.Context, logDir string, opts workloadOptions) error {
	w, err := newWorkloadCluster(a, logDir, opts)
	if err != nil {
		return err
	}
	a.work = w
	return w.start(ctx)
}

func (a *apiserver) server() string { return fmt.Sprintf("https://127.0.0.1:%d", a.port) }

func (a *apiserver) etcdPrefix() string { return "/clusters/" + a.name }

func (a *apiserver) args(etcdURL string) []string {
	args := []string{
		"apiserver",
		"--etcd-servers=" + etcdURL,
		"--etcd-prefix=" + a.etcdPrefix(),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(a.port),
		"--cert-dir=" + a.dir,
		"--tls-cert-file=" + a.pki.ServerCert,
		"--tls-private-key-file=" + a.pki.ServerKey,
		"--client-ca-file=" + a.pki.CACert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + a.pki.SAPub,
		"--service-account-signing-key-file=" + a.pki.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	if !a.workloads {
		// A bare apiserver has no token controller: pods would wait for ServiceAccounts
		// nobody creates.
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	return append(args, a.extraArgs...)
}

// start launches the apiserver and waits until /readyz answers ok. On failure the error
// names the cluster and carries the tail of its log, which is where the reason is.
func (a *apiserver) start(ctx context.Context, etcdURL string, timeout time.Duration) error {
	if pid := a.pid(); pid != 0 {
		return fmt.Errorf("cluster %s: apiserver already running (pid %d)", a.name, pid)
	}
	if !portFree(a.port) {
		return fmt.Errorf("cluster %s: port %d is already in use by another process", a.name, a.port)
	}
	exited, err := a.launch(a.args(etcdURL))
	if err != nil {
		return err
	}
	return a.waitReady(ctx, exited, timeout)
}

func (a *apiserver) waitReady(ctx context.Context, exited <-chan struct{}, timeout time.Duration) error {
	client, err := a.httpClient()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-exited:
			return fmt.Errorf("cluster %s: apiserver exited before becoming ready; last lines of %s:\n%s", a.name, a.logPath, tail(a.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(a.server() + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, failingChecks(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: apiserver not ready within %s (last /readyz: %s); last lines of %s:\n%s",
				a.name, timeout, last, a.logPath, tail(a.logPath, 20))
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-exited:
		case <-ctx.Done():
		}
	}
}

// failingChecks keeps only the "[-]" lines of a verbose /readyz answer.
func failingChecks(body string) string {
	var bad []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	if len(bad) == 0 {
		return strings.TrimSpace(body)
	}
	return strings.Join(bad, "; ")
}

func (a *apiserver) httpClient() (*http.Client, error) {
	caPEM, err := os.ReadFile(a.pki.CACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(a.pki.AdminCert, a.pki.AdminKey)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}, nil
}

func (a *apiserver) state() clusterState {
	st := clusterState{
		Name: a.name, Server: a.server(), Port: a.port, Log: a.logPath,
		Kubeconfig: a.kubeconfig, EtcdPrefix: a.etcdPrefix(),
	}
	if pid := a.pid(); pid != 0 {
		st.PID, st.Running = pid, true
	}
	if a.work != nil {
		st.Components = a.work.state()
	}
	return st
}

// choosePort returns the fixed port if one was asked for (and fails if it is taken), else
// the port this cluster used last time (so kubeconfigs stay valid across restarts) when it
// is still free, else a fresh free port. The choice is remembered in rememberPath.
func choosePort(name string, fixed int, rememberPath string) (int, error) {
	if fixed != 0 {
		if !portFree(fixed) {
			return 0, fmt.Errorf("cluster %s: port %d is already in use by another process (choose another with --ports)", name, fixed)
		}
		return fixed, remember(rememberPath, fixed)
	}
	if rememberPath != "" {
		if b, err := os.ReadFile(rememberPath); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && portFree(p) {
				return p, nil
			}
		}
	}
	p, err := freePortBelowEphemeral()
	if err != nil {
		return 0, err
	}
	return p, remember(rememberPath, p)
}

// chosenPorts are the ports this process picked already: two clusters never get the same one.
var (
	chosenMu    sync.Mutex
	chosenPorts = map[int]bool{}
)

// freePortBelowEphemeral picks a free port *below* the kernel's ephemeral range. A port from
// that range (what listening on :0 returns) can be taken between our choice and the
// apiserver's bind by any outgoing connection's local end — and 40 apiservers starting at
// once open thousands (etcd, loopback clients): a fleet of dozens failed with "bind: address
// already in use". No outgoing connection is ever given a port below the range.
func freePortBelowEphemeral() (int, error) {
	low := ephemeralLow()
	chosenMu.Lock()
	defer chosenMu.Unlock()
	base := 20000
	if low-base < 2000 {
		base = low / 2
	}
	span := low - base
	start := int(time.Now().UnixNano() % int64(span))
	for i := 0; i < span; i++ {
		p := base + (start+i*7919)%span
		if chosenPorts[p] || !portFree(p) {
			continue
		}
		chosenPorts[p] = true
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	chosenPorts[p] = true
	return p, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default: 32768).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 4096 {
				return n
			}
		}
	}
	return 32768
}

func remember(path string, port int) error {
	if path == "" {
		return nil
	}
	return os.WriteFile(path, []byte(strconv.Itoa(port)+"\n"), 0o644)
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
