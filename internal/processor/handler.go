package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"paydr/internal/payment"
	"paydr/internal/processor/api"
)

// Routes served by the Handler, and its response headers, as clients see
// them in paydr/internal/processor/api.
const (
	PathPayments         = api.PathPayments
	PathHealth           = api.PathHealth
	HeaderRequestID      = api.HeaderRequestID
	HeaderReplayed       = api.HeaderReplayed
	HeaderIdempotencyKey = api.HeaderIdempotencyKey
)

// Bounds on what a request can put in a log line.
const (
	maxLoggedPath   = 256
	maxLoggedMethod = 32
)

// healthTimeout bounds the health check's database probe: an answer
// within it, below Route 53's 2 s for a response, is the check's result.
const healthTimeout = 1500 * time.Millisecond

// HealthPingTimeout bounds the health check's DynamoDB ping. The table is
// a cache that does not decide the region's health, so a slow DynamoDB (an
// emulator busy, a throttled endpoint) must not hold the answer past the
// health checker's timeout and fail a region whose ledger is fine: the
// ping that does not answer within it reports the table unreachable.
const HealthPingTimeout = 300 * time.Millisecond

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
	// APIKey is the credential every POST /payments must carry. Nil: no
	// payment is served (a request with a credential gets 503, one
	// without 401); there is no unauthenticated mode.
	APIKey *APIKey
}

// Handler serves the processor's HTTP API:
//
//	POST /payments  body {"payment_id","amount","currency","session_id"?}
//	    Authorization: Bearer <API key> (paydr/internal/apikey), checked
//	    first: before the body is read or any store is touched
//	    Content-Type: application/json (charset=utf-8 allowed)
//	    Idempotency-Key: optional; if sent, equal to payment_id
//	    201 + payment JSON, first time and on replay (replays carry
//	    Idempotent-Replayed: true and the stored bytes), only once this
//	    region's ledger holds the committed row; 400 malformed body (not
//	    one JSON object, larger than payment.MaxBodyBytes, or a key twice
//	    in any object: refused, never "last wins"); 415 Content-Type
//	    missing or not application/json, a charset other than UTF-8, or a
//	    Content-Encoding; 422 invalid or unknown fields (at most
//	    payment.MaxUnknownFieldsListed unknown ones named, the rest
//	    counted), or an Idempotency-Key other than the payment_id (which
//	    is the idempotency key); 409 payment_id already used for a
//	    different request (nothing of the stored payment is disclosed,
//	    not even which fields differ); 401 unauthorized + WWW-Authenticate:
//	    Bearer: the API key is missing or not the current one;
//	    503 + Retry-After: this region cannot take writes and this
//	    request recorded nothing (the database refused the write, or could
//	    not be reached before the write was sent, or the API key to check
//	    the request against could not be read); 504 outcome_unknown:
//	    the write was sent and its answer lost (connection lost, deadline
//	    passed), so the payment may or may not be recorded; 500 otherwise.
//	    A 4xx records nothing: fix the request (after a 409, use a new
//	    payment_id). 503, 504 and 500 are safe to retry with the same
//	    payment_id, which settles a 504 or a 500.
//	    Each request has a deadline (Options.RequestTimeout) that cancels
//	    its database work, including waiting for a connection.
//	GET /health, open to anyone (Route 53's health checkers)
//	    {"region","database_writable","dynamodb_reachable"}: 200 when the
//	    database is writable, else 503, so DNS failover sends traffic to the
//	    writer. DynamoDB is reported, not gating: it is a cache.
//	any other route: 404, other methods: 405.
//
// Error bodies are payment.ErrorBody: they never carry internal error text,
// never echo the path, a header value or a body value, name at most a
// short sanitized field name, and are at most payment.MaxErrorBodyBytes.
// Every response carries X-Request-Id (the caller's, when it sent a valid
// one). Each request is logged once with slog, with request_id and
// payment_id; the method and path it logs are cut and sanitized, so a log
// line stays small whatever the request.
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
		// The path is not echoed: it is the caller's, of any size and content.
		writeError(rec, http.StatusNotFound, payment.ErrorBody{Error: payment.CodeNotFound, Message: "no such route; use POST /payments or GET /health"})
	}
	attrs := []any{
		"method", payment.Sanitize(r.Method, maxLoggedMethod), "path", payment.Sanitize(r.URL.Path, maxLoggedPath), "status", rec.status,
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
	}
	if r.URL.Path == PathPayments {
		attrs = append(attrs, "replayed", replayed)
	}
	switch {
	case rec.status >= 500:
		h.log.ErrorContext(ctx, "request failed", append(attrs, "err", failure)...)
	case failure != nil:
		h.log.InfoContext(ctx, "request refused", append(attrs, "reason", truncate(failure.Error(), payment.MaxErrorBodyBytes))...)
	case r.URL.Path != PathHealth:
		h.log.InfoContext(ctx, "request", attrs...)
	}
}

// payments handles POST /payments; it returns whether the answer was a
// replay and the error behind an error answer.
func (h *Handler) payments(w http.ResponseWriter, r *http.Request, info *requestInfo) (bool, error) {
	if err := h.authenticate(r); err != nil {
		h.writeFailure(w, err)
		return false, err
	}
	if err := checkMediaType(r.Header); err != nil {
		h.writeFailure(w, err)
		return false, err
	}
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
	if err := checkIdempotencyKey(r.Header, req.PaymentID); err != nil {
		h.writeFailure(w, err)
		return false, err
	}
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

// checkMediaType refuses a body not declared as JSON: Content-Type must be
// sent once, as application/json, with no charset other than UTF-8 (the
// body is read as UTF-8, RFC 8259); a Content-Encoding other than identity
// is refused too. A missing Content-Type is refused rather than assumed:
// RFC 9110 lets a recipient treat it as application/octet-stream, every
// paydr client sends it, and a browser page on another origin can send a
// body without one (or as text/plain or a form) with no CORS preflight,
// which application/json always needs. The caller's values are never
// echoed.
func checkMediaType(h http.Header) error {
	unsupported := func(header, msg string) error {
		return &payment.RequestError{Code: payment.CodeUnsupportedMediaType, Message: "unsupported media type: " + header + " " + msg,
			Fields: []payment.FieldError{{Field: header, Message: msg}}}
	}
	ct := h.Values("Content-Type")
	switch {
	case len(ct) == 0:
		return unsupported("Content-Type", "is missing; send Content-Type: application/json")
	case len(ct) > 1:
		return unsupported("Content-Type", "is sent more than once; send it once, as application/json")
	}
	mediaType, params, err := mime.ParseMediaType(ct[0])
	if err != nil || mediaType != "application/json" {
		return unsupported("Content-Type", "must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupported("Content-Type", "must be application/json, in UTF-8 (no charset, or charset=utf-8)")
	}
	for _, v := range h.Values("Content-Encoding") {
		if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, "identity") {
			return unsupported("Content-Encoding", "is not supported; send the body uncompressed")
		}
	}
	return nil
}

// checkIdempotencyKey refuses an Idempotency-Key header that is not
// paymentID. payment_id is this API's idempotency key; the header (IETF
// draft "The Idempotency-Key HTTP Header Field") is accepted as a
// restatement of it, as a quoted string (the draft's Structured Field
// String) or a bare token, and never silently ignored: a different key, an
// empty one or more than one would promise an idempotency the body does not
// ask for.
func checkIdempotencyKey(h http.Header, paymentID string) error {
	keys := h.Values(HeaderIdempotencyKey)
	if len(keys) == 0 {
		return nil
	}
	if len(keys) == 1 {
		k := strings.TrimSpace(keys[0])
		if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
			k = k[1 : len(k)-1] // a valid payment_id has no escapes
		}
		if k == paymentID {
			return nil
		}
	}
	const msg = "must be sent once and equal payment_id, which is this API's idempotency key; send the same value or leave the header out"
	return &payment.RequestError{Code: payment.CodeInvalid, Message: "invalid request: " + HeaderIdempotencyKey + ": " + msg,
		Fields: []payment.FieldError{{Field: HeaderIdempotencyKey, Message: msg}}}
}

// httpStatus is the HTTP status of each payment error code.
var httpStatus = map[string]int{
	payment.CodeMalformed:            http.StatusBadRequest,
	payment.CodeInvalid:              http.StatusUnprocessableEntity,
	payment.CodeConflict:             http.StatusConflict,
	payment.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	payment.CodeUnavailable:          http.StatusServiceUnavailable,
	// API Gateway's own answer when an integration times out: the
	// outcome is unknown there too.
	payment.CodeOutcomeUnknown: http.StatusGatewayTimeout,
	payment.CodeInternal:       http.StatusInternalServerError,
	payment.CodeNotFound:       http.StatusNotFound,
	payment.CodeMethod:         http.StatusMethodNotAllowed,
	payment.CodeUnauthorized:   http.StatusUnauthorized,
}

func (h *Handler) writeFailure(w http.ResponseWriter, err error) {
	body := payment.ErrorResponse(err)
	status, ok := httpStatus[body.Error]
	if !ok {
		status = http.StatusInternalServerError
	}
	switch status {
	case http.StatusServiceUnavailable: // not recorded: retry, here or elsewhere
		w.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", challenge(err))
	}
	writeError(w, status, body)
}

// writeError writes body with status. A body over
// payment.MaxErrorBodyBytes (none is built so; this is the guarantee)
// keeps its code and loses its details.
func writeError(w http.ResponseWriter, status int, body payment.ErrorBody) {
	b, err := json.Marshal(body)
	if err == nil && len(b) > payment.MaxErrorBodyBytes {
		b, err = json.Marshal(payment.ErrorBody{Error: payment.Sanitize(body.Error, 64), Message: "request refused; the details of the error were too long to return"})
	}
	if err != nil {
		b = []byte(`{"error":"internal_error","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// truncate cuts s to at most n bytes of valid UTF-8, marking a cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
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
		ctx, cancel := context.WithTimeout(ctx, HealthPingTimeout)
		defer cancel()
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
