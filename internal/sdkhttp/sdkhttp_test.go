package sdkhttp_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"paydr/internal/sdkhttp"
)

// TestBodyClosedBeforeTheWriterChecksIt orders one exchange the way a
// loaded machine sometimes does: the SDK has the response and has closed
// the request body before net/http's writer checks that body for bytes
// beyond its Content-Length. Without sdkhttp the writer closes the
// connection, the response body is lost, and the SDK sends the request
// again: the server carries it out twice. With sdkhttp's middleware, once.
func TestBodyClosedBeforeTheWriterChecksIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []func(*middleware.Stack) error
		// want is how many times the server receives the one PutItem.
		want int32
	}{
		// The defect, as the SDK ships: if this case fails, smithy-go has
		// fixed it, and sdkhttp can go.
		{"sdk as shipped", nil, 2},
		{"with sdkhttp", sdkhttp.APIOptions(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			var received atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.Header().Set("Content-Length", "2")
				if received.Add(1) == 1 {
					// Headers now; the body once the client's writer has
					// checked the request body and closed the connection,
					// if it does (the SDK's client does at once).
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
					g.wait(t, g.checked, 5*time.Second, "the client's writer to go on")
					select {
					case <-g.closed:
					case <-time.After(300 * time.Millisecond):
					}
				}
				io.WriteString(w, "{}")
			}))
			defer srv.Close()

			db := dynamoAt(srv.URL, &http.Client{Transport: g.transport(t)}, tc.opts)
			_, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{
				TableName: aws.String("payment-sessions-test"),
				Item: map[string]ddbtypes.AttributeValue{
					"pk": &ddbtypes.AttributeValueMemberS{Value: "paydr#dr"},
					"sk": &ddbtypes.AttributeValueMemberS{Value: "lock"},
				},
				ConditionExpression: aws.String("attribute_not_exists(pk)"),
			})
			if err != nil {
				t.Fatalf("PutItem: %v", err)
			}
			if got := received.Load(); got != tc.want {
				t.Errorf("the server received PutItem %d times, want %d", got, tc.want)
			}
		})
	}
}

// TestRetriedAttemptsSendTheWholePayload: with the middleware, an attempt
// after a failed one sends the same payload, from its start.
func TestRetriedAttemptsSendTheWholePayload(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if len(bodies) == 1 {
			http.Error(w, `{"__type":"InternalServerError"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	db := dynamoAt(srv.URL, nil, sdkhttp.APIOptions())
	if _, err := db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String("payment-sessions-test"),
		Key:       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "paydr#dr"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "lock"}},
	}); err != nil {
		t.Fatalf("DeleteItem: %v", err)
	}
	if len(bodies) != 2 || bodies[0] == "" || bodies[0] != bodies[1] {
		t.Errorf("attempts sent %q, want two identical payloads", bodies)
	}
}

// dynamoAt returns a DynamoDB client of the server at url, sending through
// hc (the SDK's default when nil) with opts, whose retries do not wait.
func dynamoAt(url string, hc aws.HTTPClient, opts []func(*middleware.Stack) error) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(url),
		HTTPClient:   hc,
		APIOptions:   opts,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
}

// gate holds the client's writer after it has written the first request's
// body, until the SDK has the response and reads its body (and so has
// closed the request body: smithy-go closes it as soon as the HTTP client
// returns).
type gate struct {
	returned chan struct{} // the first response went back to the SDK
	reading  chan struct{} // then the first connection was read from
	checked  chan struct{} // then the writer went on
	closed   chan struct{} // the client closed the first connection
	dialed   atomic.Bool
	once     [3]sync.Once
}

func newGate() *gate {
	return &gate{returned: make(chan struct{}), reading: make(chan struct{}), checked: make(chan struct{}), closed: make(chan struct{})}
}

func (g *gate) wait(t *testing.T, c chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(d):
		t.Errorf("gate: waited %s for %s", d, what)
	}
}

// transport dials the first connection through gatedConn and marks when
// its response goes back to the caller.
func (g *gate) transport(t *testing.T) http.RoundTripper {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil || g.dialed.Swap(true) {
			return c, err
		}
		return &gatedConn{Conn: c, g: g, t: t}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := tr.RoundTrip(req)
		g.once[0].Do(func() { close(g.returned) })
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type gatedConn struct {
	net.Conn
	g      *gate
	t      *testing.T
	writes int
}

// Write writes; after the second write (the request's headers go first,
// flushed on their own, then its body) it waits until the caller reads the
// response body.
func (c *gatedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.writes++; c.writes == 2 {
		c.g.wait(c.t, c.g.reading, 5*time.Second, "the SDK to read the response body")
		close(c.g.checked)
	}
	return n, err
}

func (c *gatedConn) Read(p []byte) (int, error) {
	select {
	case <-c.g.returned:
		c.g.once[1].Do(func() { close(c.g.reading) })
	default:
	}
	return c.Conn.Read(p)
}

func (c *gatedConn) Close() error {
	c.g.once[2].Do(func() { close(c.g.closed) })
	return c.Conn.Close()
}

// TestEverySDKClientUsesIt reads the module's Go files: every AWS SDK
// configuration or client options paydr writes (aws.Config{...},
// <service>.Options{...}) has APIOptions, and every file that calls
// config.LoadDefaultConfig uses sdkhttp.APIOptions.
func TestEverySDKClientUsesIt(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	var problems []string
	seen := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		imports := map[string]string{} // local name -> path
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			name := p[strings.LastIndex(p, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = p
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || len(n.Elts) == 0 {
					return true
				}
				pkg, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				p := imports[pkg.Name]
				sdk := (p == "github.com/aws/aws-sdk-go-v2/aws" && sel.Sel.Name == "Config") ||
					(strings.HasPrefix(p, "github.com/aws/aws-sdk-go-v2/service/") && sel.Sel.Name == "Options")
				if !sdk {
					return true
				}
				seen++
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "APIOptions" {
							return true
						}
					}
				}
				problems = append(problems, fmt.Sprintf("%s:%d: %s.%s without APIOptions: sdkhttp.APIOptions()", rel, fset.Position(n.Pos()).Line, pkg.Name, sel.Sel.Name))
			case *ast.SelectorExpr:
				if pkg, ok := n.X.(*ast.Ident); ok && n.Sel.Name == "LoadDefaultConfig" && imports[pkg.Name] == "github.com/aws/aws-sdk-go-v2/config" {
					seen++
					if !usesAPIOptions(f, imports) {
						problems = append(problems, fmt.Sprintf("%s:%d: config.LoadDefaultConfig without config.WithAPIOptions(sdkhttp.APIOptions())", rel, fset.Position(n.Pos()).Line))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Errorf("found %d SDK configurations in %s, want the dozen or more paydr has: is the walk reading the module?", seen, root)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// usesAPIOptions reports whether f refers to sdkhttp.APIOptions.
func usesAPIOptions(f *ast.File, imports map[string]string) bool {
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "APIOptions" {
			if pkg, ok := sel.X.(*ast.Ident); ok && imports[pkg.Name] == "paydr/internal/sdkhttp" {
				found = true
			}
		}
		return !found
	})
	return found
}
