// Package sessions is the DynamoDB session store and idempotency response
// cache of the payment processor, implementing payment.Sessions with
// aws-sdk-go-v2.
//
// # Table design
//
// One table (a global table in AWS, so last writer wins between regions),
// created by the stack with exactly: partition key "pk" (S), sort key "sk"
// (S), TTL attribute "expires_at", streams on. Items:
//
//	pk = "PAYMENT#<payment_id>"  sk = "RESPONSE"
//	    the cached response of a committed payment: payment_id, session_id
//	    (absent when none), amount_minor (N), currency, region, created_at
//	    (RFC 3339, UTC), request_sha256 (B, 32 bytes), response_body (B, the
//	    exact bytes returned), expires_at (N).
//	pk = "SESSION#<session_id>"  sk = "PAYMENT#<payment_id>"
//	    links a payment to its session: payment_id, session_id,
//	    amount_minor, currency, region, created_at, expires_at.
//
// expires_at is epoch seconds, at least 24 hours after the write (7 days by
// default). DynamoDB deletes expired items lazily, so reads treat an expired
// item as absent.
//
// DynamoDB here is a cache and session store, never the arbiter of whether a
// payment is new nor a source of answers: items are written only after the
// PostgreSQL ledger has committed the payment, and the processor never reads
// them (after a failover that lost data, the global table still holds
// payments the new writer's ledger does not). Lookup reads a cached response
// back for tests and operators. Conditional writes would be regional only on
// a global table, so none are used.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"paydr/internal/payment"
)

// Key attribute names and values of the table design.
const (
	AttrPK        = "pk"
	AttrSK        = "sk"
	AttrExpiresAt = "expires_at"
	SortResponse  = "RESPONSE"
)

// MinTTL is the shortest lifetime of an item; DefaultTTL is used when
// Options.TTL is zero.
const (
	MinTTL     = 24 * time.Hour
	DefaultTTL = 7 * 24 * time.Hour
)

// PaymentKey returns the partition key of a payment's response item.
func PaymentKey(paymentID string) string { return "PAYMENT#" + paymentID }

// SessionKey returns the partition key of a session's items.
func SessionKey(sessionID string) string { return "SESSION#" + sessionID }

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// Options configure a Store.
type Options struct {
	// TTL is how long items live; values below MinTTL are raised to it.
	TTL time.Duration
	// Now tells the time (default time.Now).
	Now func() time.Time
}

// Store is a payment.Sessions on one DynamoDB table.
type Store struct {
	api   API
	table string
	ttl   time.Duration
	now   func() time.Time
}

var _ payment.Sessions = (*Store)(nil)

// New returns a Store on table through api.
func New(api API, table string, opts Options) *Store {
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ttl = max(ttl, MinTTL)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{api: api, table: table, ttl: ttl, now: now}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// Items returns the items Save writes for rec with the given expiry: the
// response item and, when rec has a session, the session link.
func Items(rec payment.Record, expiresAt time.Time) []map[string]types.AttributeValue {
	created := rec.CreatedAt.UTC().Format(time.RFC3339Nano)
	resp := map[string]types.AttributeValue{
		AttrPK:           s(PaymentKey(rec.PaymentID)),
		AttrSK:           s(SortResponse),
		"payment_id":     s(rec.PaymentID),
		"amount_minor":   n(rec.AmountMinor),
		"currency":       s(rec.Currency),
		"region":         s(rec.Region),
		"created_at":     s(created),
		"request_sha256": &types.AttributeValueMemberB{Value: rec.Fingerprint[:]},
		"response_body":  &types.AttributeValueMemberB{Value: rec.Response},
		AttrExpiresAt:    n(expiresAt.Unix()),
	}
	if rec.SessionID == "" {
		return []map[string]types.AttributeValue{resp}
	}
	resp["session_id"] = s(rec.SessionID)
	link := map[string]types.AttributeValue{
		AttrPK:         s(SessionKey(rec.SessionID)),
		AttrSK:         s(PaymentKey(rec.PaymentID)),
		"payment_id":   s(rec.PaymentID),
		"session_id":   s(rec.SessionID),
		"amount_minor": n(rec.AmountMinor),
		"currency":     s(rec.Currency),
		"region":       s(rec.Region),
		"created_at":   s(created),
		AttrExpiresAt:  n(expiresAt.Unix()),
	}
	return []map[string]types.AttributeValue{resp, link}
}

// Save writes rec's response item and session link in one BatchWriteItem
// call. The two writes are not atomic and need not be: a link without its
// response (or the reverse) only means less is cached. A transaction would
// double the write cost and, on a global table, still be regional.
func (st *Store) Save(ctx context.Context, rec payment.Record) error {
	items := Items(rec, st.now().Add(st.ttl))
	if len(items) == 1 {
		if _, err := st.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: &st.table, Item: items[0]}); err != nil {
			return fmt.Errorf("sessions: save %s: %w", rec.PaymentID, err)
		}
		return nil
	}
	reqs := make([]types.WriteRequest, len(items))
	for i, it := range items {
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
	}
	pending := map[string][]types.WriteRequest{st.table: reqs}
	for attempt := 0; ; attempt++ {
		out, err := st.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
		if err != nil {
			return fmt.Errorf("sessions: save %s: %w", rec.PaymentID, err)
		}
		if len(out.UnprocessedItems[st.table]) == 0 {
			return nil
		}
		if attempt == 3 {
			return fmt.Errorf("sessions: save %s: %d items unprocessed after %d attempts", rec.PaymentID, len(out.UnprocessedItems[st.table]), attempt+1)
		}
		pending = out.UnprocessedItems
		select {
		case <-ctx.Done():
			return fmt.Errorf("sessions: save %s: %w", rec.PaymentID, ctx.Err())
		case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
		}
	}
}

// Lookup returns the cached record of paymentID; expired items are absent.
// It is for tests and operators: the processor answers only from the
// ledger.
func (st *Store) Lookup(ctx context.Context, paymentID string) (payment.Record, bool, error) {
	out, err := st.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &st.table,
		Key:            map[string]types.AttributeValue{AttrPK: s(PaymentKey(paymentID)), AttrSK: s(SortResponse)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return payment.Record{}, false, fmt.Errorf("sessions: lookup %s: %w", paymentID, err)
	}
	if len(out.Item) == 0 {
		return payment.Record{}, false, nil
	}
	rec, expires, err := decodeResponse(out.Item)
	if err != nil {
		return payment.Record{}, false, fmt.Errorf("sessions: lookup %s: %w", paymentID, err)
	}
	if !st.now().Before(expires) {
		return payment.Record{}, false, nil
	}
	return rec, true, nil
}

func decodeResponse(item map[string]types.AttributeValue) (payment.Record, time.Time, error) {
	var rec payment.Record
	str := func(k string) string {
		if v, ok := item[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	num := func(k string) (int64, error) {
		v, ok := item[k].(*types.AttributeValueMemberN)
		if !ok {
			return 0, fmt.Errorf("attribute %s missing or not a number", k)
		}
		return strconv.ParseInt(v.Value, 10, 64)
	}
	bin := func(k string) []byte {
		if v, ok := item[k].(*types.AttributeValueMemberB); ok {
			return v.Value
		}
		return nil
	}
	var err error
	rec.PaymentID, rec.SessionID, rec.Currency, rec.Region = str("payment_id"), str("session_id"), str("currency"), str("region")
	if rec.AmountMinor, err = num("amount_minor"); err != nil {
		return rec, time.Time{}, err
	}
	exp, err := num(AttrExpiresAt)
	if err != nil {
		return rec, time.Time{}, err
	}
	if rec.CreatedAt, err = time.Parse(time.RFC3339Nano, str("created_at")); err != nil {
		return rec, time.Time{}, fmt.Errorf("attribute created_at: %w", err)
	}
	fp := bin("request_sha256")
	if len(fp) != len(rec.Fingerprint) {
		return rec, time.Time{}, errors.New("attribute request_sha256 is not 32 bytes")
	}
	copy(rec.Fingerprint[:], fp)
	rec.Response = bin("response_body")
	if rec.Response == nil {
		return rec, time.Time{}, errors.New("attribute response_body missing")
	}
	return rec, time.Unix(exp, 0), nil
}

// SessionPayments returns the ids of the payments linked to sessionID, in
// sort-key order.
func (st *Store) SessionPayments(ctx context.Context, sessionID string) ([]string, error) {
	var ids []string
	p := dynamodb.NewQueryPaginator(st.api, &dynamodb.QueryInput{
		TableName:              &st.table,
		KeyConditionExpression: aws.String("#pk = :pk AND begins_with(#sk, :prefix)"),
		ExpressionAttributeNames: map[string]string{
			"#pk": AttrPK, "#sk": AttrSK,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s(SessionKey(sessionID)), ":prefix": s("PAYMENT#"),
		},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("sessions: list session %s: %w", sessionID, err)
		}
		for _, it := range page.Items {
			if v, ok := it["payment_id"].(*types.AttributeValueMemberS); ok {
				ids = append(ids, v.Value)
			}
		}
	}
	return ids, nil
}

// Ping checks that the table is reachable and usable (DescribeTable, status
// ACTIVE or UPDATING).
func (st *Store) Ping(ctx context.Context) error {
	out, err := st.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &st.table})
	if err != nil {
		return fmt.Errorf("sessions: ping %s: %w", st.table, err)
	}
	if out.Table == nil {
		return fmt.Errorf("sessions: ping %s: no table description", st.table)
	}
	switch out.Table.TableStatus {
	case types.TableStatusActive, types.TableStatusUpdating:
		return nil
	}
	return fmt.Errorf("sessions: ping %s: table status %s", st.table, out.Table.TableStatus)
}
