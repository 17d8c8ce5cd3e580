// Package events publishes PaymentProcessed events to the region's
// EventBridge bus, implementing payment.Events with aws-sdk-go-v2.
//
// # Event shape
//
//	Source:       "paydr.payments"
//	DetailType:   "PaymentProcessed"
//	EventBusName: the region's bus (PAYDR_EVENT_BUS)
//	Detail: {
//	  "payment_id": "pay_1",
//	  "session_id": "s-1",            (omitted when none)
//	  "amount": "12.50",              (exact decimal string)
//	  "amount_minor": 1250,           (integer minor units)
//	  "currency": "USD",
//	  "created_at": "2026-01-02T03:04:05.123456Z",
//	  "origin_region": "us-east-1"    (the region whose processor recorded it)
//	}
//
// # Cross-region forwarding
//
// The stack forwards events to the other region's bus with a rule whose
// pattern matches the local region as origin, for example on us-east-1:
//
//	{"source": ["paydr.payments"], "detail-type": ["PaymentProcessed"],
//	 "detail": {"origin_region": ["us-east-1"]}}
//
// A bus-to-bus target delivers the event unchanged, so a forwarded event
// still carries origin_region us-east-1 and the us-west-2 forwarding rule
// (which matches origin_region us-west-2) does not send it back. No
// "replicated" marker is set: it could not be added in flight, and
// origin_region alone breaks the loop. Consumers deduplicate by payment_id:
// delivery is at least once.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"paydr/internal/payment"
)

// Source and DetailType identify PaymentProcessed events.
const (
	Source     = "paydr.payments"
	DetailType = "PaymentProcessed"
)

// Detail is the detail of a PaymentProcessed event.
type Detail struct {
	PaymentID    string `json:"payment_id"`
	SessionID    string `json:"session_id,omitempty"`
	Amount       string `json:"amount"`
	AmountMinor  int64  `json:"amount_minor"`
	Currency     string `json:"currency"`
	CreatedAt    string `json:"created_at"`
	OriginRegion string `json:"origin_region"`
}

// NewDetail returns the event detail for p.
func NewDetail(p payment.Payment) Detail {
	return Detail{
		PaymentID:    p.PaymentID,
		SessionID:    p.SessionID,
		Amount:       p.Amount(),
		AmountMinor:  p.AmountMinor,
		Currency:     p.Currency,
		CreatedAt:    p.CreatedAt.UTC().Format(time.RFC3339Nano),
		OriginRegion: p.Region,
	}
}

// API is the part of the EventBridge client the publisher uses.
type API interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Publisher sends PaymentProcessed events to one bus.
type Publisher struct {
	api API
	bus string
}

var _ payment.Events = (*Publisher)(nil)

// New returns a Publisher on bus (a name or ARN) through api.
func New(api API, bus string) *Publisher { return &Publisher{api: api, bus: bus} }

// Entry returns the PutEvents entry for p.
func (pub *Publisher) Entry(p payment.Payment) (types.PutEventsRequestEntry, error) {
	detail, err := json.Marshal(NewDetail(p))
	if err != nil {
		return types.PutEventsRequestEntry{}, fmt.Errorf("events: encode %s: %w", p.PaymentID, err)
	}
	return types.PutEventsRequestEntry{
		EventBusName: aws.String(pub.bus),
		Source:       aws.String(Source),
		DetailType:   aws.String(DetailType),
		Detail:       aws.String(string(detail)),
		Time:         aws.Time(p.CreatedAt),
		Resources:    []string{},
	}, nil
}

// Publish puts the PaymentProcessed event of p on the bus. A rejected entry
// (FailedEntryCount > 0) is an error.
func (pub *Publisher) Publish(ctx context.Context, p payment.Payment) error {
	entry, err := pub.Entry(p)
	if err != nil {
		return err
	}
	out, err := pub.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry}})
	if err != nil {
		return fmt.Errorf("events: publish %s: %w", p.PaymentID, err)
	}
	if out.FailedEntryCount > 0 {
		code, msg := "", ""
		if len(out.Entries) > 0 {
			code, msg = aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage)
		}
		return fmt.Errorf("events: publish %s: entry rejected: %s %s", p.PaymentID, code, msg)
	}
	return nil
}
