package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// embeddedEtcd is the single etcd every apiserver of the fleet stores into, each under its
// own --etcd-prefix (as Kubernetes' own integration framework does).
type embeddedEtcd struct {
	e         *embed.Etcd
	client    *clientv3.Client
	clientURL string
}

func startEtcd(dataDir string, clientPort, peerPort int) (*embeddedEtcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "federation-dev"
	cfg.Dir = dataDir
	clientURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	peerURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(filepath.Dir(dataDir), "logs", "etcd.log")}
	// A dev fleet trades durability on power loss for speed: tests and benchmarks would
	// otherwise measure the disk's fsync, not our code.
	cfg.UnsafeNoFsync = true
	cfg.QuotaBackendBytes = 8 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd on port %d: %w", clientPort, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready within 60s (log: %s)", cfg.LogOutputs[0])
	}
	return &embeddedEtcd{e: e, client: v3client.New(e.Server), clientURL: clientURL.String()}, nil
}

// compact compacts the whole keyspace to the current revision, so any watch from an older
// resourceVersion that reaches etcd gets 410 Gone. Compaction is global: every cluster of the
// fleet is compacted at once.
func (d *embeddedEtcd) compact(ctx context.Context) (int64, error) {
	resp, err := d.client.Get(ctx, "compact-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	if _, err := d.client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, err
	}
	return rev, nil
}

func (d *embeddedEtcd) close() {
	d.client.Close()
	d.e.Close()
}
