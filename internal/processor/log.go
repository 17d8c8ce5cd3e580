package processor

import (
	"context"
	"log/slog"
)

// requestInfo is the per-request logging context, filled in as the request
// is understood (the payment id is known after parsing).
type requestInfo struct {
	requestID string
	paymentID string
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// LogHandler wraps an slog.Handler so records logged with a request's
// context carry request_id and payment_id.
type LogHandler struct{ slog.Handler }

// NewLogHandler returns a LogHandler around h.
func NewLogHandler(h slog.Handler) *LogHandler { return &LogHandler{h} }

// Handle adds the request attributes found in ctx and passes r on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if info := requestInfoFrom(ctx); info != nil {
		r.AddAttrs(slog.String("request_id", info.requestID))
		if info.paymentID != "" {
			r.AddAttrs(slog.String("payment_id", info.paymentID))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs returns a LogHandler whose inner handler has attrs.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup returns a LogHandler whose inner handler opens group name.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{h.Handler.WithGroup(name)}
}
