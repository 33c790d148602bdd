package config

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSOptions turns the nats: block into connection options: authentication,
// TLS, and reconnecting forever, which both binaries want.
func (n NATSConfig) NATSOptions(name string) ([]nats.Option, error) {
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
	if n.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLSCAFile))
	}
	if n.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLSCertFile, n.TLSKeyFile))
	}
	if n.TLSInsecure {
		opts = append(opts, nats.Secure(nil))
		opts = append(opts, func(o *nats.Options) error {
			if o.TLSConfig == nil {
				return fmt.Errorf("nats.tls_insecure_skip_verify: no TLS config to relax")
			}
			o.TLSConfig.InsecureSkipVerify = true
			return nil
		})
	}
	return opts, nil
}
