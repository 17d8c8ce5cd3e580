package moto_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"paydr/internal/local/moto"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"

	"paydr/internal/needs"
)

func awsConfig(endpoint, region string) aws.Config {
	return aws.Config{
		APIOptions:   sdkhttp.APIOptions(),
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

func TestServerAnswersAWSCallsPerRegion(t *testing.T) {
	srv := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id, err := sts.NewFromConfig(awsConfig(srv.Endpoint(), "us-east-1")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity() error = %v", err)
	}
	if aws.ToString(id.Account) == "" {
		t.Errorf("GetCallerIdentity().Account is empty")
	}

	// One endpoint, two regions: a table created in one region is not seen in
	// the other.
	east := dynamodb.NewFromConfig(awsConfig(srv.Endpoint(), "us-east-1"))
	west := dynamodb.NewFromConfig(awsConfig(srv.Endpoint(), "us-west-2"))
	_, err = east.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("sessions"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("CreateTable(us-east-1) error = %v", err)
	}
	tests := []struct {
		name   string
		client *dynamodb.Client
		want   []string
	}{
		{"us-east-1", east, []string{"sessions"}},
		{"us-west-2", west, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.client.ListTables(ctx, &dynamodb.ListTablesInput{})
			if err != nil {
				t.Fatalf("ListTables() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, out.TableNames, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListTables() mismatch (-want +got):\n%s", diff)
			}
		})
	}

	if err := srv.Reset(ctx); err != nil {
		t.Fatalf("Reset() error = %v", err)
	}
	out, err := east.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables() after Reset error = %v", err)
	}
	if len(out.TableNames) != 0 {
		t.Errorf("ListTables() after Reset = %v, want none", out.TableNames)
	}
}

func TestStopFreesPortAndLeavesNoProcess(t *testing.T) {
	srv := mototest.Start(t)
	pid := srv.PID()
	if pid == 0 {
		t.Fatal("PID() = 0 for a running server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop() error = %v", err)
	}
	t.Logf("stopped in %v", time.Since(t0))
	if srv.Running() {
		t.Errorf("Running() = true after Stop")
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port())))
	if err != nil {
		t.Fatalf("port %d still bound after Stop: %v", srv.Port(), err)
	}
	l.Close()
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop() error = %v, want nil", err)
	}
}

func TestOpenAdoptsAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	first, err := moto.Start(ctx, moto.Options{StateDir: dir})
	if errors.Is(err, moto.ErrNotInstalled) {
		needs.Tool(t, err)
	}
	if err != nil {
		t.Fatalf("Start() error = %v", err)
	}
	t.Logf("moto answered %v after start", time.Since(t0))
	t.Cleanup(func() { _ = first.Stop(context.Background()) })

	again, err := moto.Start(ctx, moto.Options{StateDir: dir})
	if err != nil {
		t.Fatalf("second Start() error = %v", err)
	}
	if again.Endpoint() != first.Endpoint() {
		t.Errorf("second Start().Endpoint() = %s, want the running %s", again.Endpoint(), first.Endpoint())
	}
	adopted, err := moto.Open(dir)
	if err != nil {
		t.Fatalf("Open() error = %v", err)
	}
	if !adopted.Running() || adopted.Endpoint() != first.Endpoint() {
		t.Fatalf("Open() = running %v at %s, want running at %s", adopted.Running(), adopted.Endpoint(), first.Endpoint())
	}
	if err := adopted.Stop(ctx); err != nil {
		t.Fatalf("adopted Stop() error = %v", err)
	}
	if first.Running() {
		t.Errorf("server still running after Stop through Open")
	}
	if _, err := moto.Open(dir); err == nil {
		t.Errorf("Open() after Stop error = nil, want an error (pid file removed)")
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name         string
		opts         moto.Options
		wantIs       error
		wantContains string
	}{
		{"missing binary", moto.Options{Bin: "/nonexistent/moto_server"}, moto.ErrNotInstalled, "pip install"},
		{"no state dir", moto.Options{}, nil, "StateDir is required"},
		{"port in use", moto.Options{Port: busy.Addr().(*net.TCPAddr).Port}, nil, "is in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no state dir" {
				tt.opts.StateDir = t.TempDir()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			srv, err := moto.Start(ctx, tt.opts)
			if err == nil {
				srv.Stop(ctx)
				t.Fatalf("Start(%+v) error = nil, want one", tt.opts)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Start() error = %v, want errors.Is %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantContains) || !strings.HasPrefix(err.Error(), "moto: ") {
				t.Errorf("Start() error = %q, want prefix \"moto: \" and %q", err, tt.wantContains)
			}
		})
	}
}

// TestWarm warms a real moto: every call of the table must be one moto
// answers (a call it did not route would warm nothing), and warming
// creates nothing.
func TestWarm(t *testing.T) {
	srv := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := srv.Warm(ctx, "us-east-1", "us-west-2"); err != nil {
		t.Fatalf("Warm() error = %v", err)
	}
	t.Logf("warmed in %s", time.Since(start))
	// Every call was routed (Warm checks each is answered 200) through the
	// start-up hook's memoized module list.
	b, err := os.ReadFile(srv.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), moto.HookModuleList); n != 1 {
		t.Errorf("moto's log has %q %d times, want once:\n%s", moto.HookModuleList, n, b)
	}
	for _, region := range []string{"us-east-1", "us-west-2"} {
		out, err := dynamodb.NewFromConfig(awsConfig(srv.Endpoint(), region)).ListTables(ctx, &dynamodb.ListTablesInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.TableNames) != 0 {
			t.Errorf("tables in %s after Warm = %v, want none", region, out.TableNames)
		}
	}
}

// TestResponsesInOneSend: with the start-up hook, moto's answer arrives
// whole in a client's first read (status line, headers and body sent
// together), so the AWS SDK's race (internal/sdkhttp) finds nothing left
// on the socket to lose, in clients paydr cannot change (the Terraform
// provider's). Each request goes on a new connection and is read once.
func TestResponsesInOneSend(t *testing.T) {
	srv := mototest.Start(t)
	addr := strings.TrimPrefix(srv.Endpoint(), "http://")
	body := "Action=GetCallerIdentity&Version=2011-06-15"
	req := "POST / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Authorization: AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	split := 0
	const n = 20
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		got, err := c.Read(buf)
		c.Close()
		if err != nil {
			t.Fatalf("request %d: first read: %v", i, err)
		}
		// The first read alone must hold the whole answer: a body cut
		// short is io.ErrUnexpectedEOF.
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:got])), nil)
		if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
			t.Fatalf("request %d: first read %q (%v), want a 200 with a Content-Length", i, buf[:got], err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			split++
		}
	}
	if split != 0 {
		t.Errorf("%d of %d answers came in more than one read (headers first), want every one whole in the first", split, n)
	}
	b, err := os.ReadFile(srv.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(b), moto.HookOneWrite); c != 1 {
		t.Errorf("moto's log has %q %d times, want once:\n%s", moto.HookOneWrite, c, b)
	}
}
