package moto_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"
)

func configFor(endpoint, id, secret, token string) aws.Config {
	return aws.Config{APIOptions: sdkhttp.APIOptions(), Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token)}
}

// TestRolePolicyNamingResourcesUnderEnforcedIAM checks the start-up hook's
// third part: with IAM enforced, a role whose policy names the table's ARN
// (as every statement of paydr's roles names its resources) may call the
// actions it grants, and is refused the others. Without the hook moto
// authorizes DynamoDB against the resource "*", which the statement does
// not match, and refuses both. It also checks EnforceIAM on and off.
func TestRolePolicyNamingResourcesUnderEnforcedIAM(t *testing.T) {
	srv := mototest.Start(t)
	if !srv.ActionLevelIAM() {
		t.Fatalf("ActionLevelIAM() = false: the start-up hook's IAM part is not in moto's log %s", srv.LogPath())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := configFor(srv.Endpoint(), "test", "test", "")
	table, err := dynamodb.NewFromConfig(admin).CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("sessions"), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	arn := aws.ToString(table.TableDescription.TableArn)
	im := iam.NewFromConfig(admin)
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}`
	role, err := im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("reader"), AssumeRolePolicyDocument: aws.String(trust)})
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem"],"Resource":["` + arn + `"]}]}`
	if _, err := im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("reader"), PolicyName: aws.String("read"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatalf("PutRolePolicy: %v", err)
	}
	creds, err := sts.NewFromConfig(admin).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Role.Arn, RoleSessionName: aws.String("t")})
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	reader := dynamodb.NewFromConfig(configFor(srv.Endpoint(), aws.ToString(creds.Credentials.AccessKeyId),
		aws.ToString(creds.Credentials.SecretAccessKey), aws.ToString(creds.Credentials.SessionToken)))
	key := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "a"}}

	if err := srv.EnforceIAM(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("sessions"), Key: key}); err != nil {
		t.Errorf("GetItem, granted on the table's ARN = %v, want allowed", err)
	}
	_, err = reader.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("sessions"), Item: key})
	if !mototest.Denied(err) {
		t.Errorf("PutItem, not granted = %v, want AccessDenied", err)
	}
	if _, err := dynamodb.NewFromConfig(admin).ListTables(ctx, &dynamodb.ListTablesInput{}); err == nil {
		t.Errorf("ListTables with the test credentials succeeded while IAM is enforced")
	}

	if err := srv.EnforceIAM(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.NewFromConfig(admin).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Errorf("ListTables with the test credentials after EnforceIAM(false) = %v, want allowed", err)
	}
}
