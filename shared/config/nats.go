package config

import (
	"crypto/tls"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSOptions turns the nats: block into connection options: authentication,
// TLS, and reconnecting forever, which both binaries want.
func (n NATSConfig) NATSOptions(name string) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true),
	}
	switch {
	case n.CredsFile != "":
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	}
	if n.TLSInsecure {
		// Secure with a base config first: RootCAs and ClientCert add to it.
		opts = append(opts, nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})) //nolint:gosec // asked for by nats.tls_insecure_skip_verify
	}
	if n.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLSCAFile))
	}
	if n.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLSCertFile, n.TLSKeyFile))
	}
	return opts
}
