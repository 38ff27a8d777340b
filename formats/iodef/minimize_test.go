package iodef

import (
	"flag"
	"testing"
)

// fuzzMinimizeTime is how long a fuzzing worker may spend minimizing an
// input that found new coverage, unless -fuzzminimizetime says otherwise.
//
// Go's minimizer tries every sub-slice of the input, quadratic in its
// length, and the workers report no executions meanwhile. The targets of
// this package take documents of hundreds to thousands of bytes (the seeds
// are whole IODEF documents) at a millisecond or more an execution, so
// under the default minute a worker was minimizing nearly all the time and
// a run showed "0/sec" after its first thousand executions
// (golang/go#48820).
const fuzzMinimizeTime = "2s"

// BoundMinimizing sets -fuzzminimizetime to fuzzMinimizeTime unless the
// command line gives it. Exported for the fuzz targets of package
// iodef_test.
func BoundMinimizing(f *testing.F) {
	f.Helper()
	const name = "test.fuzzminimizetime"
	if flag.Lookup(name) == nil {
		return
	}
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	if given {
		return
	}
	if err := flag.Set(name, fuzzMinimizeTime); err != nil {
		f.Fatal(err)
	}
}
