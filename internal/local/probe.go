package local

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"paydr/internal/local/daemon"
	"paydr/internal/local/router"
)

// routerClient reads the router at url, each request bounded to 3 s.
func routerClient(url string) router.Client {
	return router.Client{URL: url, HTTP: &http.Client{Timeout: 3 * time.Second}}
}

// httpStatus GETs url with a short timeout and returns the status code, or
// 0 and the error.
func httpStatus(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), nil
}

// logTail returns the last n lines of the file at path, indented.
func logTail(path string, n int) string {
	return "  " + strings.ReplaceAll(daemon.LogTail(path, 0, n), "\n", "\n  ")
}
