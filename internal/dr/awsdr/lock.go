package awsdr

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"paydr/internal/dr"
)

// LockAPI is the part of DynamoDB the lock needs.
type LockAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Lock item key in the sessions table (pk, sk), apart from every session
// key (sessions use other prefixes).
const (
	LockPK = "paydr#dr"
	LockSK = "lock"
)

// DynamoLock is the DR lock on AWS: a conditional PutItem of one item in
// the sessions table, in the acting region. A conditional write is atomic
// and strongly consistent within a region, needs no extra resource, and
// works while the other region is lost. It is not a cross-region lock (the
// global table replicates last-writer-wins), so operators act from the
// region that will hold the writer — for a failover the surviving one,
// where every competing operator must also act. The item expires (TTL, and
// the condition ignores an expired lock) so a crashed operator does not
// block the next one for longer than TTL. A write that reached DynamoDB
// twice, its first answer lost (the SDK retries a dropped response), finds
// its own item, by its token: that is the lock, held, not a rival's.
type DynamoLock struct {
	API    LockAPI
	Table  string
	Region string
	// TTL is how long a lock lives without release (default 2 h).
	TTL time.Duration
	Now func() time.Time
}

// Lock implements dr.Locker.
func (l DynamoLock) Lock(ctx context.Context, info dr.LockInfo) (func(context.Context) error, error) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	ttl := l.TTL
	if ttl <= 0 {
		ttl = 2 * time.Hour
	}
	token := fmt.Sprintf("%s/%d/%d", info.Host, info.PID, now.UnixNano())
	key := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: LockPK}, "sk": &ddbtypes.AttributeValueMemberS{Value: LockSK}}
	item := map[string]ddbtypes.AttributeValue{
		"pk":         key["pk"],
		"sk":         key["sk"],
		"owner":      &ddbtypes.AttributeValueMemberS{Value: info.Owner},
		"host":       &ddbtypes.AttributeValueMemberS{Value: info.Host},
		"pid":        &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(info.PID)},
		"op":         &ddbtypes.AttributeValueMemberS{Value: info.Op},
		"since":      &ddbtypes.AttributeValueMemberS{Value: now.UTC().Format(time.RFC3339)},
		"token":      &ddbtypes.AttributeValueMemberS{Value: token},
		"expires_at": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(ttl).Unix(), 10)},
	}
	_, err := l.API.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(l.Table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR expires_at < :now"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":now": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)}},
	})
	unlock := func(ctx context.Context) error {
		_, err := l.API.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: aws.String(l.Table), Key: key,
			ConditionExpression:       aws.String("#t = :token"),
			ExpressionAttributeNames:  map[string]string{"#t": "token"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":token": &ddbtypes.AttributeValueMemberS{Value: token}},
		})
		var gone *ddbtypes.ConditionalCheckFailedException // released, or expired and taken
		if err != nil && !errors.As(err, &gone) {
			return fmt.Errorf("awsdr: unlock: delete item in %s (%s): %w", l.Table, l.Region, err)
		}
		return nil
	}
	var ccf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		holder := dr.LockInfo{Owner: "unknown"}
		if out, gerr := l.API.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.Table), Key: key, ConsistentRead: aws.Bool(true)}); gerr == nil {
			// The write reached DynamoDB twice, its first answer lost
			// (the SDK retries a dropped response): the item is ours.
			if str(out.Item["token"]) == token {
				return unlock, nil
			}
			holder.Owner, holder.Host, holder.Op = str(out.Item["owner"]), str(out.Item["host"]), str(out.Item["op"])
			holder.PID, _ = strconv.Atoi(num(out.Item["pid"]))
			holder.Time, _ = time.Parse(time.RFC3339, str(out.Item["since"]))
		}
		return nil, &dr.LockedError{Holder: holder, Where: fmt.Sprintf("dynamodb://%s/%s/%s#%s", l.Region, l.Table, LockPK, LockSK)}
	}
	if err != nil {
		return nil, fmt.Errorf("awsdr: lock: put item in %s (%s): %w", l.Table, l.Region, err)
	}
	return unlock, nil
}

func str(v ddbtypes.AttributeValue) string {
	if s, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func num(v ddbtypes.AttributeValue) string {
	if n, ok := v.(*ddbtypes.AttributeValueMemberN); ok {
		return n.Value
	}
	return ""
}
