package main

import (
	"fmt"
	"runtime"
	"strconv"
)

const gomaxprocsUsage = "GOMAXPROCS of each started node and of the tool: 0 gives each process its share of the machine's CPUs (at least 1), -1 leaves Go's default (every CPU, or GOMAXPROCS from the environment), N sets N"

// procs is the GOMAXPROCS the tool and the nodes it starts run with. With
// Go's default every process runs a scheduler per CPU, so on two cores three
// nodes and the tool run eight, whose idle processors spin and wake each
// other (a hypercall each on a virtual machine) where a process of one
// processor would have slept. A process's share of the CPUs is what a
// container CPU limit gives it, and Go reads that limit.
type procs int // 0: Go's default

// setProcs applies flag (see gomaxprocsUsage) to the tool itself, for
// processes sharing the machine, and returns the setting for the nodes.
func setProcs(flag, processes int) procs {
	var n int
	switch {
	case flag > 0:
		n = flag
	case flag == 0:
		n = max(1, runtime.NumCPU()/processes)
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return procs(n)
}

// env is the environment a started node needs for the setting (none for
// Go's default). Only the nodes get it: the go build of irxd keeps every CPU.
func (p procs) env() []string {
	if p == 0 {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(int(p))}
}

// note says what the run used, for the report's header.
func (p procs) note(startedNodes bool) string {
	if p == 0 {
		return fmt.Sprintf("GOMAXPROCS Go's default (%d for the tool)", runtime.GOMAXPROCS(0))
	}
	who := "the tool"
	if startedNodes {
		who = "each node and the tool"
	}
	return fmt.Sprintf("GOMAXPROCS %d for %s, of %d CPUs", int(p), who, runtime.NumCPU())
}
