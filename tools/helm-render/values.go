package main

// Values handling as helm does it: values.yaml, then each -f file, then each --set, deep-merged;
// numbers read from YAML become float64 (helm reads YAML through JSON), --set numbers int64.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// readValuesFile parses a YAML values file into a map with helm's number typing.
func readValuesFile(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	values := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if values == nil {
		values = map[string]interface{}{}
	}
	return jsonNumbers(values).(map[string]interface{}), nil
}

// jsonNumbers turns every integer into float64, as sigs.k8s.io/yaml (YAML -> JSON -> Go) does in
// helm, so templates that print a number without `int` behave here as they do under helm.
func jsonNumbers(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		for key, item := range v {
			v[key] = jsonNumbers(item)
		}
		return v
	case []interface{}:
		for i, item := range v {
			v[i] = jsonNumbers(item)
		}
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	default:
		return v
	}
}

// coalesce merges override into base (both modified maps are fresh copies): maps merge key by key,
// anything else replaces, and an explicit null removes the key, as `helm install -f` does.
func coalesce(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for key, value := range base {
		out[key] = value
	}
	for key, value := range override {
		if value == nil {
			delete(out, key)
			continue
		}
		baseMap, baseIsMap := out[key].(map[string]interface{})
		overMap, overIsMap := value.(map[string]interface{})
		if baseIsMap && overIsMap {
			out[key] = coalesce(baseMap, overMap)
		} else {
			out[key] = value
		}
	}
	return out
}

// parseSet turns `a.b=1,c.d=x` into a nested map. Backslash escapes `.`, `,` and `=` in keys and
// values (`--set podAnnotations.example\.com/x=1`). asString keeps every value a string
// (--set-string); otherwise values are typed like helm's strvals: int64, bool, null, string.
func parseSet(expr string, asString bool) (map[string]interface{}, error) {
	out := map[string]interface{}{}
	for _, pair := range splitUnescaped(expr, ',') {
		if pair == "" {
			continue
		}
		kv := splitUnescaped(pair, '=')
		if len(kv) < 2 {
			return nil, fmt.Errorf("--set %q: expected key=value", pair)
		}
		key := kv[0]
		raw := unescape(strings.Join(kv[1:], "="))
		path := splitUnescaped(key, '.')
		var value interface{} = raw
		if !asString {
			value = typedScalar(raw)
		}
		node := out
		for i, part := range path {
			part = unescape(part)
			if part == "" {
				return nil, fmt.Errorf("--set %q: empty key segment", pair)
			}
			if i == len(path)-1 {
				node[part] = value
				break
			}
			next, ok := node[part].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				node[part] = next
			}
			node = next
		}
	}
	return out, nil
}

func typedScalar(raw string) interface{} {
	switch raw {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil && (raw == "0" || !strings.HasPrefix(raw, "0")) {
		return n
	}
	return raw
}

func splitUnescaped(s string, sep byte) []string {
	var parts []string
	var current strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			current.WriteByte(s[i])
			current.WriteByte(s[i+1])
			i++
		case s[i] == sep:
			parts = append(parts, current.String())
			current.Reset()
		default:
			current.WriteByte(s[i])
		}
	}
	return append(parts, current.String())
}

func unescape(s string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// readClusterFile reads the objects that stand for the cluster: YAML documents, each an object or
// a List whose items are objects. An empty file is a cluster with nothing in it.
func readClusterFile(path string) ([]map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objects := []map[string]interface{}{}
	decoder := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var document map[string]interface{}
		if err := decoder.Decode(&document); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if document == nil {
			continue
		}
		document = jsonNumbers(document).(map[string]interface{})
		if items, ok := document["items"].([]interface{}); ok {
			for _, item := range items {
				object, ok := item.(map[string]interface{})
				if !ok {
					return nil, fmt.Errorf("%s: a List item is not an object", path)
				}
				objects = append(objects, object)
			}
			continue
		}
		objects = append(objects, document)
	}
	return objects, nil
}
