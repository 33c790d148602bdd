package natsserver

import (
	"fmt"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

// JetStream runs JetStream with its store in dir (aggregator.data_dir), so
// the streams, and with them reports and events, survive a restart. The
// directory is created when missing.
func JetStream(dir string) Option {
	return func(so *startOptions) { so.jetStream, so.storeDir = true, dir }
}

func enableJetStream(o *server.Options, dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: JetStream needs a store directory (aggregator.data_dir)", ErrConfig)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create JetStream store %s (aggregator.data_dir): %w", dir, err)
	}
	o.JetStream = true
	o.StoreDir = dir
	return nil
}
