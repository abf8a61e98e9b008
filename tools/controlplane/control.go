package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// controlServer is the fleet's fault-injection API for tests: stop and start one
// apiserver, compact etcd. It listens on loopback only.
type controlServer struct {
	etcd         *embeddedEtcd
	members      map[string]*apiserver
	readyTimeout time.Duration
	stopTimeout  time.Duration
	rep          *reporter
	state        func() fleetState
}

func (c *controlServer) serve(ctx context.Context) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.state())
	})
	mux.HandleFunc("POST /etcd/compact", func(w http.ResponseWriter, r *http.Request) {
		rev, err := c.etcd.compact(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		c.rep.event("compacted", map[string]any{"revision": rev}, "etcd compacted to revision %d", rev)
		writeJSON(w, http.StatusOK, map[string]int64{"revision": rev})
	})
	// A workload cluster's controller-manager, scheduler or kwok: stopping kwok is how every
	// node of a member dies at once (their leases are no longer renewed).
	mux.HandleFunc("POST /clusters/{name}/components/{component}/{action}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := c.members[r.PathValue("name")]
		if !ok || m.work == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no workload cluster " + r.PathValue("name")})
			return
		}
		comp := m.work.component(r.PathValue("component"))
		if comp == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no component " + r.PathValue("component") + " (controller-manager, scheduler, kwok)"})
			return
		}
		var err error
		switch r.PathValue("action") {
		case "stop":
			err = comp.stop(syscall.SIGTERM, c.stopTimeout)
		case "start":
			if comp.pid() == 0 {
				_, err = comp.launch(comp.args)
			}
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown action " + r.PathValue("action")})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		c.rep.event("component-"+r.PathValue("action"), map[string]any{"cluster": m.name, "component": comp.args[0]}, "%s: %s (%s)", m.name, comp.args[0], r.PathValue("action"))
		writeJSON(w, http.StatusOK, m.state())
	})
	mux.HandleFunc("POST /clusters/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := c.members[r.PathValue("name")]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no cluster " + r.PathValue("name")})
			return
		}
		var err error
		switch r.PathValue("action") {
		case "stop":
			sig := syscall.SIGTERM
			if strings.EqualFold(r.URL.Query().Get("signal"), "KILL") {
				sig = syscall.SIGKILL
			}
			err = m.stop(sig, c.stopTimeout)
			c.rep.event("cluster-stopped", map[string]any{"cluster": m.name}, "%s stopped (%s)", m.name, sig)
		case "start":
			t0 := time.Now()
			err = m.start(r.Context(), c.etcd.clientURL, c.readyTimeout)
			if err == nil {
				c.rep.event("cluster-ready", map[string]any{"cluster": m.name, "seconds": time.Since(t0).Seconds()},
					"%s ready again (%.1fs)", m.name, time.Since(t0).Seconds())
			}
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown action " + r.PathValue("action")})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, m.state())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	return "http://" + l.Addr().String(), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
