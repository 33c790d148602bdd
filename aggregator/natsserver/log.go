package natsserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// levelTrace sits below debug: NATS protocol traces, off unless a handler
// asks for that much.
const levelTrace = slog.LevelDebug - 4

// slogLogger routes the server's log to slog. Notices are routine (start,
// listening, client churn) and go to info; the server's Fatalf is recorded
// and logged at error instead of exiting the process, so Start can return
// a clear error.
type slogLogger struct {
	logger *slog.Logger
	// violation, when set, takes the server's permission-violation lines
	// (counted and logged once per client with its identity) and reports
	// whether the line was one.
	violation func(msg string) bool

	mu       sync.Mutex
	fatalMsg string
	hasFatal bool
}

var _ server.Logger = (*slogLogger)(nil)

func newSlogLogger(l *slog.Logger) *slogLogger { return &slogLogger{logger: l} }

func (l *slogLogger) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	l.logger.Log(ctx, level, fmt.Sprintf(format, v...))
}

// Noticef logs a routine server notice at info.
func (l *slogLogger) Noticef(format string, v ...any) { l.log(slog.LevelInfo, format, v) }

// Warnf logs at warn.
func (l *slogLogger) Warnf(format string, v ...any) { l.log(slog.LevelWarn, format, v) }

// Errorf logs at error, except permission violations when a violation
// hook takes them.
func (l *slogLogger) Errorf(format string, v ...any) {
	if l.violation != nil && strings.Contains(format, "Violation") && l.violation(fmt.Sprintf(format, v...)) {
		return
	}
	l.log(slog.LevelError, format, v)
}

// Debugf logs at debug.
func (l *slogLogger) Debugf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

// Tracef logs below debug.
func (l *slogLogger) Tracef(format string, v ...any) { l.log(levelTrace, format, v) }

// Fatalf records the first fatal message for Start and logs it at error;
// an embedded server must never end the aggregator's process.
func (l *slogLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if !l.hasFatal {
		l.fatalMsg, l.hasFatal = msg, true
	}
	l.mu.Unlock()
	l.logger.Error(msg, "fatal", true)
}

// fatal returns the first fatal message, if any.
func (l *slogLogger) fatal() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg, l.hasFatal
}
