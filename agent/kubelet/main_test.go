package kubelet

import (
	"flag"
	"os"
	"testing"
)

// TestMain shortens the fuzzer's minimisation unless -fuzzminimizetime is
// given. Go minimises every input that finds new coverage by trying to
// delete each range of its bytes, quadratic in its length; on JSON of a few
// KB that takes the whole default minute, so a short -fuzztime run would
// spend all of it minimising and execute almost no new inputs.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
