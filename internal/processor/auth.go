package processor

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/payment"
)

// Defaults of APIKeyOptions.
const (
	// DefaultKeyRefresh is how long a key read from SSM is used before it
	// is read again: a rotation reaches every processor within about a
	// minute, without a redeploy, at one GetParameter a minute per
	// execution environment.
	DefaultKeyRefresh = time.Minute
	// DefaultKeyRetry is how long after a failed read the next one is
	// tried; meanwhile no request waits on SSM.
	DefaultKeyRetry = 2 * time.Second
	// DefaultKeyTimeout bounds one read of the key.
	DefaultKeyTimeout = 2 * time.Second
)

// KeyLoader returns the current API key (ssmkey.Read of the parameter
// named by PAYDR_API_KEY_PARAM, in production).
type KeyLoader func(ctx context.Context) (string, error)

// APIKeyOptions tune an APIKey; zero values take the defaults.
type APIKeyOptions struct {
	Refresh time.Duration // DefaultKeyRefresh
	Retry   time.Duration // DefaultKeyRetry
	Timeout time.Duration // DefaultKeyTimeout
	Logger  *slog.Logger  // nil: slog.Default()
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// APIKey is the payments API's credential as the processor checks it: the
// key read with a KeyLoader, kept only as its SHA-256 digest, read again
// every Refresh so a rotation takes effect without a redeploy.
//
// It fails closed. Until a key has been read, every check answers an error
// wrapping payment.ErrUnavailable (the handler's 503): the processor cannot
// tell a valid key from an invalid one, and telling a well-configured
// client that its key is wrong (401) would be false. A failed read is
// retried after Retry, not by every request. Once a key has been read, a
// failed refresh keeps it (logged): SSM being unreachable must not take
// payments down in a region whose ledger works, and the key it keeps was
// valid; the next successful read replaces it.
//
// Only one request reads the key at a time. While a refresh is under way
// the others are checked against the key already read; before the first
// read they wait for it (at most Timeout).
type APIKey struct {
	load KeyLoader
	opts APIKeyOptions
	log  *slog.Logger

	fetch sync.Mutex // held by the request reading the key

	mu     sync.Mutex
	digest [sha256.Size]byte
	loaded bool      // a key has been read
	next   time.Time // when to read it again
	err    error     // the last read's error, while none has succeeded
}

// NewAPIKey returns an APIKey reading the key with load. It reads nothing
// until the first check (or Load), so a Lambda's init stays free of network
// calls.
func NewAPIKey(load KeyLoader, opts APIKeyOptions) *APIKey {
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultKeyRefresh
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultKeyRetry
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultKeyTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &APIKey{load: load, opts: opts, log: log}
}

// Load reads the key now unless one read within Refresh is held, and
// reports whether a key is available. The local server calls it at start
// so a misconfiguration shows in its log before the first payment.
func (k *APIKey) Load(ctx context.Context) error {
	_, err := k.current(ctx)
	return err
}

// Matches reports, in constant time, whether presented is the current key.
// err (wrapping payment.ErrUnavailable) means no key could be read: the
// caller must refuse the request. The digests are compared, so the time
// taken says nothing about the key's length or content.
func (k *APIKey) Matches(ctx context.Context, presented string) (bool, error) {
	want, err := k.current(ctx)
	if err != nil {
		return false, err
	}
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1, nil
}

// current returns the digest of the current key, reading the key when it is
// due.
func (k *APIKey) current(ctx context.Context) ([sha256.Size]byte, error) {
	k.mu.Lock()
	d, loaded, due, lastErr := k.digest, k.loaded, !k.opts.Now().Before(k.next), k.err
	k.mu.Unlock()
	switch {
	case loaded && !due:
		return d, nil
	case !loaded && !due:
		return d, lastErr // a read failed moments ago: refuse without another
	}
	if loaded {
		if !k.fetch.TryLock() {
			return d, nil // another request is refreshing it
		}
	} else {
		k.fetch.Lock()
	}
	defer k.fetch.Unlock()
	k.mu.Lock()
	if k.opts.Now().Before(k.next) { // read by the request that held fetch
		d, loaded, lastErr = k.digest, k.loaded, k.err
		k.mu.Unlock()
		if loaded {
			return d, nil
		}
		return d, lastErr
	}
	k.mu.Unlock()

	// One client's cancelled request must not fail the read for the rest.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.opts.Timeout)
	key, err := k.load(rctx)
	cancel()
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.opts.Now()
	if err != nil {
		k.next = now.Add(k.opts.Retry)
		if k.loaded {
			k.log.WarnContext(ctx, "api key: refresh failed; the key read before stays in use", "err", err, "retry_in", k.opts.Retry.String())
			return k.digest, nil
		}
		k.err = fmt.Errorf("api key: not loaded: %w: %w", err, payment.ErrUnavailable)
		k.log.ErrorContext(ctx, "api key: not loaded; POST /payments answers 503 until it is", "err", err, "retry_in", k.opts.Retry.String())
		return [sha256.Size]byte{}, k.err
	}
	digest := sha256.Sum256([]byte(key))
	switch {
	case !k.loaded:
		k.log.InfoContext(ctx, "api key: loaded", "refresh", k.opts.Refresh.String())
	case digest != k.digest:
		k.log.InfoContext(ctx, "api key: changed; the new key is in use") // a rotation
	}
	k.digest, k.loaded, k.err, k.next = digest, true, nil, now.Add(k.opts.Refresh)
	return k.digest, nil
}

// Messages of a 401. Neither names the key's parameter nor echoes what was
// sent.
const (
	msgNoCredentials  = "authentication required: send the payments API key as Authorization: Bearer <key>"
	msgBadCredentials = "the API key sent is not valid: send the current payments API key as Authorization: Bearer <key>"
)

// errUnauthenticated is the refusal of a request without the key (RFC 6750:
// a request with no credentials gets no error code in WWW-Authenticate, a
// wrong one invalid_token).
type errUnauthenticated struct {
	payment.RequestError
	challenge string
}

func (e *errUnauthenticated) Unwrap() error { return &e.RequestError }

// challenge is the WWW-Authenticate value of a 401.
func challenge(err error) string {
	var u *errUnauthenticated
	if errors.As(err, &u) {
		return u.challenge
	}
	return apikey.Scheme + ` realm="paydr"`
}

// authenticate checks that r carries the API key; it reads nothing of the
// body. A request carrying no credential in the Bearer scheme is refused
// without reading the key, so anonymous traffic never reaches SSM.
func (h *Handler) authenticate(r *http.Request) error {
	if invokedDirectly(r.Context()) {
		return nil // the Lambda service authorized the caller (lambda:InvokeFunction)
	}
	presented, ok := apikey.Presented(r.Header)
	if !ok {
		return &errUnauthenticated{
			RequestError: payment.RequestError{Code: payment.CodeUnauthorized, Message: msgNoCredentials},
			challenge:    apikey.Scheme + ` realm="paydr"`,
		}
	}
	if h.opts.APIKey == nil {
		return fmt.Errorf("api key: this handler has no API key to check against: %w", payment.ErrUnavailable)
	}
	match, err := h.opts.APIKey.Matches(r.Context(), presented)
	if err != nil {
		return err
	}
	if !match {
		return &errUnauthenticated{
			RequestError: payment.RequestError{Code: payment.CodeUnauthorized, Message: msgBadCredentials},
			challenge:    apikey.Scheme + ` realm="paydr", error="invalid_token"`,
		}
	}
	return nil
}

// directInvocationKey marks the context of a direct Lambda invocation
// (Invoke with the payment itself as payload).
type directInvocationKey struct{}

// withDirectInvocation marks ctx as a direct Lambda invocation's. Only
// Invoke sets it, for payloads that are neither API Gateway events nor
// schedules: the Lambda service has already authenticated and authorized
// their caller with IAM (lambda:InvokeFunction on this function: the
// stack's resource policy grants it only to API Gateway and the outbox
// schedule, and none of the stack's roles holds it), and they have no
// headers to carry a key. Requests through API Gateway and the local HTTP
// server never carry the mark.
func withDirectInvocation(ctx context.Context) context.Context {
	return context.WithValue(ctx, directInvocationKey{}, true)
}

func invokedDirectly(ctx context.Context) bool {
	v, _ := ctx.Value(directInvocationKey{}).(bool)
	return v
}
