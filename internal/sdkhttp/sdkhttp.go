// Package sdkhttp provides the middleware paydr adds to every AWS SDK
// client: the SDK's HTTP requests with one race taken out.
//
// The race (smithy-go v1.28.9, the newest; also in the AWS provider's
// v1.22.3): the SDK closes a request's body as soon as the HTTP client
// returns the response, while net/http's writer may still be checking that
// the body has nothing beyond its Content-Length. When the request's
// payload is an io.WriterTo (a *bytes.Reader, as every serializer makes
// it), so is the body the SDK hands net/http, and its WriteTo answers
// io.EOF once closed. net/http's check copies through WriteTo, takes that
// io.EOF for a failed write and closes the connection, and the response
// body still in flight is lost ("use of closed network connection"). The
// SDK then retries a request the server has already carried out. For a
// create that is "already exists"; for the DR lock's conditional write it
// is "locked", by the very operator who holds it.
//
// It bites on plain HTTP (the emulator, the local environment), where
// net/http writes the body to the socket before that check; over TLS the
// body is buffered until after it. A loaded machine widens the window: CI
// lost a run to it.
//
// The middleware hands the SDK each attempt's payload as a plain
// io.ReadSeeker, so net/http's check reads it, and a closed body reads as
// the end: io.EOF there is no error. It is a middleware, not an HTTP
// client, because config.LoadDefaultConfig must be free to rebuild the
// client (a custom CA bundle, AWS_CA_BUNDLE, does).
package sdkhttp

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// APIOptions returns the middleware to give every AWS SDK client paydr
// makes: aws.Config's APIOptions, a service's Options.APIOptions, or
// config.WithAPIOptions for config.LoadDefaultConfig.
func APIOptions() []func(*middleware.Stack) error {
	return []func(*middleware.Stack) error{addPlainPayload}
}

// middlewareID names the middleware in the SDK's stack.
const middlewareID = "paydr.PlainPayload"

// addPlainPayload adds the middleware last in the finalize step: after the
// retry middleware (so it acts on each attempt) and after signing.
func addPlainPayload(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc(middlewareID, plainPayload), middleware.After)
}

func plainPayload(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return next.HandleFinalize(ctx, in)
	}
	stream := req.GetStream()
	if _, ok := stream.(io.WriterTo); !ok {
		return next.HandleFinalize(ctx, in)
	}
	var plain io.Reader = reader{stream}
	if s, ok := stream.(io.ReadSeeker); ok {
		plain = readSeeker{s}
	}
	// SetStream returns a copy: the retry middleware still rewinds the
	// request it holds, whose stream this one reads.
	r, err := req.SetStream(plain)
	if err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("sdkhttp: request payload: %w", err)
	}
	in.Request = r
	return next.HandleFinalize(ctx, in)
}

// readSeeker and reader hide every method of a payload but these.
type (
	readSeeker struct{ io.ReadSeeker }
	reader     struct{ io.Reader }
)
