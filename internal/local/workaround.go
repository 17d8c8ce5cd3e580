package local

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// kmsReplicaWorkaround is the emulator gap paydr up works around on the
// synthesized configuration itself, shown with the stack's gaps.
const kmsReplicaWorkaround = "kms replica key: moto 5.2's ReplicateKey copies the primary key shallowly, so the replica shares the primary's aliases " +
	"(creating the secondary alias fails with AlreadyExists) and multi-Region configuration (the primary then reads as a replica and every later refresh fails), " +
	"and drops the declared tags (the provider waits minutes for them); locally the secondary region gets its own key (aws_kms_key.secondary) " +
	"with the same description, policy, tags and alias instead of a replica; the cloud target keeps the replica"

// MotoWorkarounds lists, one line each, what paydr up changes in the
// synthesized local-target configuration because the emulator cannot apply
// it as is (besides what the stack's local target leaves out itself, see
// stack.LocalGaps).
func MotoWorkarounds() []string { return []string{kmsReplicaWorkaround} }

// motoWorkarounds rewrites a synthesized local-target cdk.tf.json for
// moto 5.2: every aws_kms_replica_key becomes a single-Region aws_kms_key of
// the same name, provider, description, policy, deletion window and tags,
// and every reference follows it. Output is indented JSON with sorted keys,
// deterministic for one input.
func motoWorkarounds(cdkJSON []byte) ([]byte, error) {
	if !bytes.Contains(cdkJSON, []byte(`"aws_kms_replica_key"`)) {
		return cdkJSON, nil
	}
	// References are "${aws_kms_replica_key.NAME.ATTR}"; the resource type key
	// itself has no dot after it and is moved below.
	renamed := bytes.ReplaceAll(cdkJSON, []byte("aws_kms_replica_key."), []byte("aws_kms_key."))
	var doc map[string]any
	if err := json.Unmarshal(renamed, &doc); err != nil {
		return nil, fmt.Errorf("moto workarounds: %w", err)
	}
	res, _ := doc["resource"].(map[string]any)
	replicas, _ := res["aws_kms_replica_key"].(map[string]any)
	keys, _ := res["aws_kms_key"].(map[string]any)
	if keys == nil {
		keys = map[string]any{}
	}
	for name, v := range replicas {
		if _, dup := keys[name]; dup {
			return nil, fmt.Errorf("moto workarounds: aws_kms_replica_key.%s: an aws_kms_key.%s exists already", name, name)
		}
		r, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("moto workarounds: aws_kms_replica_key.%s is not an object", name)
		}
		delete(r, "primary_key_arn")
		r["enable_key_rotation"] = true
		keys[name] = r
	}
	delete(res, "aws_kms_replica_key")
	res["aws_kms_key"] = keys
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("moto workarounds: %w", err)
	}
	return out.Bytes(), nil
}
