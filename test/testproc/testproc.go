// Package testproc runs the binaries that the end-to-end and fault suites
// start as real processes: output to a log file whose tail is printed when
// the test fails, stopped (or killed, paused, resumed) on the test's
// behalf, and never outliving the test process.
package testproc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Process is a binary a test started.
type Process struct {
	Name    string
	LogPath string
	Cmd     *exec.Cmd

	done    chan struct{}
	mu      sync.Mutex
	stopped bool
}

// Options adjust Start.
type Options struct {
	// Owner's cleanup stops the process; nil means the t given to Start.
	// A subtest that starts a process for the tests after it passes its
	// parent.
	Owner *testing.T
	// Env, when not nil, is the process's whole environment; nil inherits
	// the test's.
	Env []string
	// TailLines of the log are printed when Owner has failed; 0 means 40.
	TailLines int
}

// Start runs bin with args, appending its output to dir/name.log (a
// restarted process keeps one log), and stops it when the owner ends.
func Start(t *testing.T, dir, name, bin string, o Options, args ...string) *Process {
	t.Helper()
	owner := o.Owner
	if owner == nil {
		owner = t
	}
	lines := o.TailLines
	if lines == 0 {
		lines = 40
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = o.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start(), "start %s", name)
	p := &Process{Name: name, LogPath: logPath, Cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	owner.Cleanup(func() {
		p.Stop()
		if owner.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, p.Tail(lines))
		}
	})
	return p
}

// Stop sends SIGTERM (SIGCONT first, should it be paused), then SIGKILL
// after stopGrace, and waits for the exit.
func (p *Process) Stop() {
	p.end(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGCONT)
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
}

// Kill ends the process at once, as a crash would.
func (p *Process) Kill() {
	p.end(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
	})
}

// end runs stop once, whichever of Stop and Kill comes first.
func (p *Process) end(stop func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	stop()
}

// Pause and Resume freeze and thaw the process (SIGSTOP, SIGCONT), as a
// host that stalls would.
func (p *Process) Pause()  { _ = p.Cmd.Process.Signal(syscall.SIGSTOP) }
func (p *Process) Resume() { _ = p.Cmd.Process.Signal(syscall.SIGCONT) }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail returns the log's last lines.
func (p *Process) Tail(lines int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

// String names the process and its command line.
func (p *Process) String() string {
	return fmt.Sprintf("%s (%s)", p.Name, strings.Join(p.Cmd.Args, " "))
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
