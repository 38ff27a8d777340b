package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat CPU times;
// it has been 100 on every Linux ABI Go supports.
const clockTicks = 100

// processCPU is the user+system CPU time a process has used so far.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis. utime and stime are fields 14
	// and 15.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reads the CPU time the started nodes and the load tool used
// over a window, so a change can be judged by CPU per record, which varies
// far less from run to run than throughput on a shared two-core machine.
type cpuMeter struct {
	nodes      []*irxdtest.Node
	nodeStart  time.Duration
	selfStart  time.Duration
	nodeUsed   time.Duration
	selfUsed   time.Duration
	unreadable bool
}

func startCPU(nodes []*irxdtest.Node) *cpuMeter {
	m := &cpuMeter{nodes: nodes, selfStart: selfCPU()}
	m.nodeStart = m.nodesCPU()
	return m
}

func (m *cpuMeter) nodesCPU() time.Duration {
	var total time.Duration
	for _, n := range m.nodes {
		pid := n.PID()
		if pid == 0 {
			m.unreadable = true
			continue
		}
		d, err := processCPU(pid)
		if err != nil {
			m.unreadable = true
			continue
		}
		total += d
	}
	return total
}

// stop ends the window.
func (m *cpuMeter) stop() {
	m.nodeUsed, m.selfUsed = m.nodesCPU()-m.nodeStart, selfCPU()-m.selfStart
}

// report says how much CPU each record cost the nodes and the load tool
// over the window.
func (m *cpuMeter) report(records int, what string) string {
	nodes, self := m.nodeUsed, m.selfUsed
	if records == 0 || len(m.nodes) == 0 || m.unreadable {
		return fmt.Sprintf("cpu: load tool %v", self.Round(time.Millisecond))
	}
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(records))
	}
	return fmt.Sprintf("cpu per %s: %s in the %d nodes, %s in the load tool (nodes %v, load tool %v)",
		what, per(nodes), len(m.nodes), per(self), nodes.Round(time.Millisecond), self.Round(time.Millisecond))
}

// startCPUProfile profiles this process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}
