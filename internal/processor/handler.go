package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"paydr/internal/payment"
	"paydr/internal/processor/api"
)

// Routes served by the Handler, and its response headers, as clients see
// them in paydr/internal/processor/api.
const (
	PathPayments    = api.PathPayments
	PathHealth      = api.PathHealth
	HeaderRequestID = api.HeaderRequestID
	HeaderReplayed  = api.HeaderReplayed
)

// healthTimeout bounds each health probe.
const healthTimeout = 2 * time.Second

// DatabaseProbe tells whether this region's database accepts writes
// (ledger.Ledger.Writable).
type DatabaseProbe interface {
	Writable(ctx context.Context) (bool, error)
}

// Pinger tells whether a dependency is reachable (sessions.Store.Ping).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Processor is the payment service behind the HTTP routes.
type Processor interface {
	Process(ctx context.Context, req payment.Request) (payment.Result, error)
}

// Outbox publishes the events a crash or a bus outage left unpublished
// (payment.Service.PublishPending).
type Outbox interface {
	PublishPending(ctx context.Context, minAge time.Duration, limit int) (int, error)
}

// Options are the dependencies of a Handler.
type Options struct {
	Service  Processor
	Outbox   Outbox        // nil: scheduled sweeps are refused
	Database DatabaseProbe // this region's own cluster
	Sessions Pinger        // the DynamoDB table
	Region   string
	Logger   *slog.Logger // nil: slog.Default()
	// RequestTimeout is the deadline of a payment's database work
	// (Config.RequestTimeout; 0: DefaultRequestTimeout).
	RequestTimeout time.Duration
}

// Handler serves the processor's HTTP API:
//
//	POST /payments  body {"payment_id","amount","currency","session_id"?}
//	    201 + payment JSON, first time and on replay (replays carry
//	    Idempotent-Replayed: true and the stored bytes), only once this
//	    region's ledger holds the committed row; 400 malformed body;
//	    422 invalid fields; 409 payment_id reused with different content;
//	    503 + Retry-After: this region cannot take writes and this
//	    request recorded nothing (the database refused the write, or could
//	    not be reached before the write was sent); 504 outcome_unknown:
//	    the write was sent and its answer lost (connection lost, deadline
//	    passed), so the payment may or may not be recorded; 500 otherwise.
//	    All are safe to retry with the same payment_id, which settles a
//	    504 or a 500.
//	    Each request has a deadline (Options.RequestTimeout) that cancels
//	    its database work, including waiting for a connection. Error
//	    bodies are payment.ErrorBody and never carry internal error text.
//	GET /health
//	    {"region","database_writable","dynamodb_reachable"}: 200 when the
//	    database is writable, else 503, so DNS failover sends traffic to the
//	    writer. DynamoDB is reported, not gating: it is a cache.
//
// Every response carries X-Request-Id (the caller's, when it sent a valid
// one). Each request is logged once with slog, with request_id and
// payment_id.
type Handler struct {
	opts Options
	log  *slog.Logger
}

// NewHandler returns a Handler over opts.
func NewHandler(opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Handler{opts: opts, log: log}
}

// ServeHTTP routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, requestID(r))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, reqID string) {
	start := time.Now()
	info := &requestInfo{requestID: reqID}
	ctx := withRequestInfo(r.Context(), info)
	r = r.WithContext(ctx)
	w.Header().Set(HeaderRequestID, reqID)
	rec := &statusRecorder{ResponseWriter: w}
	var replayed bool
	var failure error
	switch r.URL.Path {
	case PathPayments:
		if r.Method != http.MethodPost {
			rec.Header().Set("Allow", http.MethodPost)
			writeError(rec, http.StatusMethodNotAllowed, payment.ErrorBody{Error: payment.CodeMethod, Message: "use POST " + PathPayments})
			break
		}
		replayed, failure = h.payments(rec, r, info)
	case PathHealth:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rec.Header().Set("Allow", http.MethodGet)
			writeError(rec, http.StatusMethodNotAllowed, payment.ErrorBody{Error: payment.CodeMethod, Message: "use GET " + PathHealth})
			break
		}
		h.health(rec, r)
	default:
		writeError(rec, http.StatusNotFound, payment.ErrorBody{Error: payment.CodeNotFound, Message: "no route " + r.URL.Path + "; use POST /payments or GET /health"})
	}
	attrs := []any{
		"method", r.Method, "path", r.URL.Path, "status", rec.status,
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
	}
	if r.URL.Path == PathPayments {
		attrs = append(attrs, "replayed", replayed)
	}
	switch {
	case rec.status >= 500:
		h.log.ErrorContext(ctx, "request failed", append(attrs, "err", failure)...)
	case failure != nil:
		h.log.InfoContext(ctx, "request refused", append(attrs, "reason", failure.Error())...)
	case r.URL.Path != PathHealth:
		h.log.InfoContext(ctx, "request", attrs...)
	}
}

// payments handles POST /payments; it returns whether the answer was a
// replay and the error behind an error answer.
func (h *Handler) payments(w http.ResponseWriter, r *http.Request, info *requestInfo) (bool, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, payment.MaxBodyBytes+1))
	if err != nil {
		err = &payment.RequestError{Code: payment.CodeMalformed, Message: "malformed request: body could not be read"}
		h.writeFailure(w, err)
		return false, err
	}
	req, err := payment.DecodeRequest(body)
	if err != nil {
		h.writeFailure(w, err)
		return false, err
	}
	info.paymentID = req.PaymentID
	timeout := h.opts.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res, err := h.opts.Service.Process(ctx, req)
	if err != nil {
		h.writeFailure(w, err)
		return false, err
	}
	w.Header().Set("Content-Type", "application/json")
	if res.Replayed {
		w.Header().Set(HeaderReplayed, "true")
	}
	w.WriteHeader(http.StatusCreated) // created, or the replay of its first answer
	_, _ = w.Write(res.Body)
	return res.Replayed, nil
}

// httpStatus is the HTTP status of each payment error code.
var httpStatus = map[string]int{
	payment.CodeMalformed:   http.StatusBadRequest,
	payment.CodeInvalid:     http.StatusUnprocessableEntity,
	payment.CodeConflict:    http.StatusConflict,
	payment.CodeUnavailable: http.StatusServiceUnavailable,
	// API Gateway's own answer when an integration times out: the
	// outcome is unknown there too.
	payment.CodeOutcomeUnknown: http.StatusGatewayTimeout,
	payment.CodeInternal:       http.StatusInternalServerError,
	payment.CodeNotFound:       http.StatusNotFound,
	payment.CodeMethod:         http.StatusMethodNotAllowed,
}

func (h *Handler) writeFailure(w http.ResponseWriter, err error) {
	body := payment.ErrorResponse(err)
	status, ok := httpStatus[body.Error]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable { // not recorded: retry, here or elsewhere
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, status, body)
}

func writeError(w http.ResponseWriter, status int, body payment.ErrorBody) {
	b, err := json.Marshal(body)
	if err != nil {
		b = []byte(`{"error":"internal_error","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// HealthBody is the JSON body of GET /health (api.HealthBody).
type HealthBody = api.HealthBody

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	body := HealthBody{Region: h.opts.Region}
	var wg sync.WaitGroup
	wg.Go(func() {
		ok, err := h.opts.Database.Writable(ctx)
		if err != nil {
			h.log.WarnContext(ctx, "health: database probe failed", "err", err)
		}
		body.DatabaseWritable = ok && err == nil
	})
	wg.Go(func() {
		err := h.opts.Sessions.Ping(ctx)
		if err != nil {
			h.log.WarnContext(ctx, "health: dynamodb ping failed", "err", err)
		}
		body.DynamoDBReachable = err == nil
	})
	wg.Wait()
	// Only the ledger decides whether this region can take payments: the
	// session table is a cache written after the commit, so a slow or
	// unreachable DynamoDB degrades the region (reported, logged) but must
	// not fail it over to a region whose database cannot write.
	status := http.StatusOK
	if !body.DatabaseWritable {
		status = http.StatusServiceUnavailable
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// requestID returns the caller's X-Request-Id when it is a sane token, or a
// new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(HeaderRequestID); id != "" && len(id) <= 128 && validToken(id) {
		return id
	}
	return newRequestID()
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// statusRecorder remembers the status written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}
