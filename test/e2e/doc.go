// Package e2e runs the aggregator and one agent per node against a real
// Kubernetes control plane on loopback: kube-apiserver and etcd built from
// their Go modules (test/e2e/cluster, test/e2e/build.sh), metrics-server
// registered through an APIService, and one simulated kubelet per node whose
// numbers the tests own. The tests carry the build tag e2e:
//
//	make e2e
//
// See docs/testing.md.
package e2e
