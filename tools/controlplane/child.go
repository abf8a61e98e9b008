package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child supervises one child process of the fleet (an apiserver, a controller-manager, a
// scheduler, kwok): its output appended to its own log, killed by the kernel if the
// supervisor dies (Pdeathsig: no orphan keeps a port), stopped with a grace period.
type child struct {
	label   string // how errors name it: "cluster member-1: scheduler"
	binary  string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
}

// launch starts the process unless it is running; the channel closes when it exits.
func (c *child) launch(args []string) (<-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil, fmt.Errorf("%s: already running (pid %d)", c.label, c.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "\n==== controlplane: starting %s at %s ====\n", c.label, time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(c.binary, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: starting: %w", c.label, err)
	}
	exited := make(chan struct{})
	c.cmd, c.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		logf.Close()
		c.mu.Lock()
		if c.cmd == cmd {
			c.cmd = nil
		}
		c.mu.Unlock()
		close(exited)
	}()
	return exited, nil
}

// stop signals the process and waits for it to exit, killing it after the grace period.
func (c *child) stop(sig syscall.Signal, grace time.Duration) error {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(grace):
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: pid %d did not exit after SIGKILL", c.label, cmd.Process.Pid)
	}
}

// pid is the running process's id, or 0.
func (c *child) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}
