// Command informer-bench is the client-go side of bench/informer.py: a reference informer
// (client-go's SharedInformer, as Go controllers use it), plus the seeder and the writer that
// both informers are measured against. It is a benchmark tool, not part of federation.
//
//	informer-bench seed     --kubeconfig F --namespace NS --objects N [--size 1024]
//	informer-bench informer --kubeconfig F --namespace NS --expect N --out results.json
//	informer-bench writer   --kubeconfig F --namespace NS --objects N --duration 20s --out acks.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const stopName = "bench-stop"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: informer-bench seed|informer|writer [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file")
	kctx := fs.String("context", "", "kubeconfig context")
	ns := fs.String("namespace", "bench", "namespace")
	objects := fs.Int("objects", 10000, "number of ConfigMaps")
	size := fs.Int("size", 1024, "approximate bytes of data per ConfigMap")
	expect := fs.Int("expect", 0, "objects the informer must hold once synced")
	out := fs.String("out", "", "results file (JSON)")
	duration := fs.Duration("duration", 20*time.Second, "how long the writer writes")
	concurrency := fs.Int("concurrency", 32, "concurrent requests of the seeder and the writer")
	strip := fs.Bool("strip-managed-fields", false, "memory: cache Deployments without managedFields (SetTransform)")
	_ = fs.Parse(os.Args[2:])

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: *kctx}).ClientConfig()
	must(err)
	cfg.QPS, cfg.Burst = 100000, 100000 // measure the apiserver, not client-side throttling
	client, err := kubernetes.NewForConfig(cfg)
	must(err)
	ctx := context.Background()

	switch os.Args[1] {
	case "seed":
		seed(ctx, client, *ns, *objects, *size, *concurrency)
	case "informer":
		runInformer(ctx, client, *ns, *expect, *out)
	case "writer":
		write(ctx, client, *ns, *objects, *duration, *concurrency, *out)
	case "memory":
		memory(ctx, client, *ns, *expect, *strip, *out)
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "informer-bench:", err)
		os.Exit(1)
	}
}

func name(i int) string { return fmt.Sprintf("cm-%06d", i) }

func seed(ctx context.Context, client kubernetes.Interface, ns string, n, size, concurrency int) {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		must(err)
	}
	payload := strings.Repeat("x", size)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name(i), Namespace: ns}, Data: map[string]string{"payload": payload, "seq": "0"}}
				_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					must(err)
				}
			}
		}()
	}
	wg.Wait()
}

func rssBytes() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	must(err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

type informerResult struct {
	SyncSeconds float64    `json:"syncSeconds"`
	RSSBefore   int64      `json:"rssBefore"`
	RSSSynced   int64      `json:"rssSynced"`
	Objects     int        `json:"objects"`
	Events      [][2]int64 `json:"events"`    // [resourceVersion, unix nanoseconds when the handler saw it]
	CPUSynced   float64    `json:"cpuSynced"` // process CPU seconds (user+system) when synced
	CPUEnd      float64    `json:"cpuEnd"`    // ... and when the stop marker arrived
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func runInformer(ctx context.Context, client kubernetes.Interface, ns string, expect int, out string) {
	res := informerResult{RSSBefore: rssBytes()}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	events := make([][2]int64, 0, 1<<20)
	stop := make(chan struct{})
	var stopOnce sync.Once
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, newObj interface{}) {
			cm := newObj.(*corev1.ConfigMap)
			rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
			now := time.Now().UnixNano()
			mu.Lock()
			events = append(events, [2]int64{rv, now})
			mu.Unlock()
		},
		AddFunc: func(obj interface{}) {
			if obj.(*corev1.ConfigMap).Name == stopName {
				stopOnce.Do(func() { close(stop) })
			}
		},
	})
	must(err)
	start := time.Now()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		must(fmt.Errorf("informer never synced"))
	}
	res.SyncSeconds = time.Since(start).Seconds()
	res.Objects = len(inf.GetStore().ListKeys())
	if expect > 0 && res.Objects != expect {
		must(fmt.Errorf("synced %d objects, expected %d", res.Objects, expect))
	}
	res.RSSSynced = rssBytes()
	res.CPUSynced = cpuSeconds()
	fmt.Println("synced") // the orchestrator starts the writer on this line
	<-stop
	res.CPUEnd = cpuSeconds()
	mu.Lock()
	res.Events = events
	mu.Unlock()
	b, err := json.Marshal(res)
	must(err)
	must(os.WriteFile(out, b, 0o644))
}

type memoryResult struct {
	SyncSeconds float64 `json:"syncSeconds"`
	HeapBefore  uint64  `json:"heapBefore"` // live heap bytes after GC, before the informer
	HeapSynced  uint64  `json:"heapSynced"` // ... once it holds every object
	RSSBefore   int64   `json:"rssBefore"`
	RSSSynced   int64   `json:"rssSynced"`
	Objects     int     `json:"objects"`
	CPUBefore   float64 `json:"cpuBefore"`
	CPUSynced   float64 `json:"cpuSynced"`
}

func heapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// memory: bytes per cached Deployment of client-go's informer, whole or (as controllers that
// care about memory do) with managedFields stripped by a transform before the store.
func memory(ctx context.Context, client kubernetes.Interface, ns string, expect int, strip bool, out string) {
	res := memoryResult{HeapBefore: heapBytes(), RSSBefore: rssBytes(), CPUBefore: cpuSeconds()}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Apps().V1().Deployments().Informer()
	if strip {
		must(inf.SetTransform(func(obj interface{}) (interface{}, error) {
			if d, ok := obj.(*appsv1.Deployment); ok {
				d.ManagedFields = nil
			}
			return obj, nil
		}))
	}
	start := time.Now()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		must(fmt.Errorf("informer never synced"))
	}
	res.SyncSeconds = time.Since(start).Seconds()
	res.CPUSynced = cpuSeconds()
	res.Objects = len(inf.GetStore().ListKeys())
	if expect > 0 && res.Objects != expect {
		must(fmt.Errorf("synced %d objects, expected %d", res.Objects, expect))
	}
	res.HeapSynced = heapBytes()
	res.RSSSynced = rssBytes()
	runtime.KeepAlive(inf)
	b, err := json.Marshal(res)
	must(err)
	must(os.WriteFile(out, b, 0o644))
}

type writerResult struct {
	Acks    [][2]int64 `json:"acks"` // [resourceVersion, unix nanoseconds when the write returned]
	Seconds float64    `json:"seconds"`
	Errors  int64      `json:"errors"`
}

func write(ctx context.Context, client kubernetes.Interface, ns string, n int, d time.Duration, concurrency int, out string) {
	deadline := time.Now().Add(d)
	// A value unique to this run: a patch that changes nothing is not a write (the apiserver
	// answers with the old object and sends no event), and would count as a lost event.
	run := time.Now().UnixNano()
	var next atomic.Int64
	var errs atomic.Int64
	acks := make([][][2]int64, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := int(next.Add(1))
				cmName := name(i % n)
				patch := []byte(fmt.Sprintf(`{"data":{"seq":"%d-%d"}}`, run, i))
				cm, err := client.CoreV1().ConfigMaps(ns).Patch(ctx, cmName, "application/merge-patch+json", patch, metav1.PatchOptions{})
				if err != nil {
					errs.Add(1)
					continue
				}
				rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
				acks[w] = append(acks[w], [2]int64{rv, time.Now().UnixNano()})
			}
		}(w)
	}
	wg.Wait()
	res := writerResult{Seconds: time.Since(start).Seconds(), Errors: errs.Load()}
	for _, a := range acks {
		res.Acks = append(res.Acks, a...)
	}
	_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: stopName, Namespace: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		must(err)
	}
	b, err := json.Marshal(res)
	must(err)
	must(os.WriteFile(out, b, 0o644))
}
