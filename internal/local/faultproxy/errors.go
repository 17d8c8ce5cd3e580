package faultproxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// protocol is an AWS wire protocol, as far as its error shape goes.
type protocol int

const (
	protoRestJSON protocol = iota // X-Amzn-ErrorType and {"message"}
	protoAWSJSON                  // {"__type","message"}
	protoCBOR                     // Smithy RPC v2 CBOR {"__type","message"}
	protoXML                      // query, EC2 query, restXml: <Error><Code>
)

// restXML are the signing names of restXml services.
var restXML = map[string]bool{"route53": true, "s3": true, "cloudfront": true}

// protocolOf tells r's protocol from its headers and service.
func protocolOf(r *http.Request, service string) protocol {
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.EqualFold(r.Header.Get("Smithy-Protocol"), "rpc-v2-cbor"):
		return protoCBOR
	case strings.HasPrefix(ct, "application/x-amz-json-"):
		return protoAWSJSON
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"), restXML[service]:
		return protoXML
	}
	return protoRestJSON
}

// writeError answers r with an AWS error in its protocol's shape: xmlCode
// for XML protocols, jsonCode for JSON and CBOR ones (AWS names a throttle
// Throttling in the one and ThrottlingException in the other).
func writeError(w http.ResponseWriter, r *http.Request, service string, status int, xmlCode, jsonCode, message string) {
	id := requestID()
	h := w.Header()
	h.Set("X-Amzn-RequestId", id)
	var body []byte
	switch protocolOf(r, service) {
	case protoXML:
		type xmlError struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		type xmlErrorResponse struct {
			XMLName   xml.Name `xml:"ErrorResponse"`
			Error     xmlError `xml:"Error"`
			RequestID string   `xml:"RequestId"`
		}
		kind := "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		body, _ = xml.Marshal(xmlErrorResponse{Error: xmlError{Type: kind, Code: xmlCode, Message: message}, RequestID: id})
		body = append([]byte(xml.Header), body...)
		h.Set("Content-Type", "text/xml")
	case protoCBOR:
		body = cborStringMap([][2]string{{"__type", jsonCode}, {"message", message}})
		h.Set("Content-Type", "application/cbor")
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
	case protoAWSJSON:
		body, _ = json.Marshal(map[string]string{"__type": jsonCode, "message": message})
		h.Set("Content-Type", r.Header.Get("Content-Type"))
		h.Set("X-Amzn-ErrorType", jsonCode)
	default:
		body, _ = json.Marshal(map[string]string{"message": message})
		h.Set("Content-Type", "application/json")
		h.Set("X-Amzn-ErrorType", jsonCode)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// cborStringMap encodes pairs as a CBOR map of text strings (RFC 8949).
func cborStringMap(pairs [][2]string) []byte {
	head := func(major byte, n int) []byte {
		switch {
		case n < 24:
			return []byte{major<<5 | byte(n)}
		case n < 1<<8:
			return []byte{major<<5 | 24, byte(n)}
		default:
			return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
		}
	}
	out := head(5, len(pairs))
	for _, kv := range pairs {
		for _, s := range kv {
			if len(s) >= 1<<16 {
				s = s[:1<<16-1]
			}
			out = append(append(out, head(3, len(s))...), s...)
		}
	}
	return out
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
