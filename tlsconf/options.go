package tlsconf

import (
	"log/slog"
	"time"
)

// defaultReloadInterval is how often a Server checks its files for changes
// when WithReloadInterval is not given.
const defaultReloadInterval = 2 * time.Second

// Option configures a Server.
type Option func(*options)

type options struct {
	interval time.Duration
	logger   *slog.Logger
}

func defaultOptions() options {
	return options{interval: defaultReloadInterval, logger: slog.Default()}
}

// WithReloadInterval sets how often the Server's files are read and compared
// (by content hash) with the last seen version. d <= 0 keeps the default,
// 2s.
func WithReloadInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.interval = d
		}
	}
}

// WithLogger sets the logger for reloads (Info), failed reloads (Error) and
// certificate warnings such as an expired certificate or a stale CRL (Warn).
// A nil l keeps the default, slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}
