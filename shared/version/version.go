// Package version holds the build's version, stamped by the Makefile and the
// Dockerfiles through -ldflags.
package version

// Version is set at build time with
// -ldflags "-X github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version.Version=v1.2.3".
var Version = "dev"
