package clusterevents

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lease is one key in a NATS KV bucket whose entries expire after ttl:
// whoever created the key holds the lease while it keeps updating it at the
// revision it last wrote. A holder that stops renewing (crashed, cut off)
// loses the lease when the key expires, and another replica's Create
// succeeds.
type lease struct {
	kv  jetstream.KeyValue
	key string
	id  string
	ttl time.Duration

	mu       sync.Mutex
	rev      uint64    // revision we last wrote; 0 while not holding
	renewed  time.Time // when we last wrote it
	lastSeen string    // the holder's id as last read, for logs
}

// try acquires or renews the lease and reports whether this replica holds
// it now.
func (l *lease) try(ctx context.Context, now time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev != 0 {
		rev, err := l.kv.Update(ctx, l.key, []byte(l.id), l.rev)
		if err == nil {
			l.rev, l.renewed = rev, now
			return true, nil
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
			// Someone else wrote the key: our lease expired.
			l.rev = 0
			return false, nil
		}
		// NATS unreachable: we still hold it until it would have expired.
		if now.Sub(l.renewed) < l.ttl {
			return true, fmt.Errorf("renew lease %s: %w", l.key, err)
		}
		l.rev = 0
		return false, fmt.Errorf("renew lease %s: %w", l.key, err)
	}
	rev, err := l.kv.Create(ctx, l.key, []byte(l.id))
	if err == nil {
		l.rev, l.renewed = rev, now
		return true, nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		if e, gerr := l.kv.Get(ctx, l.key); gerr == nil {
			l.lastSeen = string(e.Value())
		}
		return false, nil
	}
	return false, fmt.Errorf("acquire lease %s: %w", l.key, err)
}

// holder is the id of the replica that held the lease when last looked at.
func (l *lease) holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev != 0 {
		return l.id
	}
	return l.lastSeen
}

// release deletes the key if we hold it, so another replica takes over at
// its next try instead of after the expiry.
func (l *lease) release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return nil
	}
	rev := l.rev
	l.rev = 0
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}
