package main

// The template engine: Go text/template with sprig's functions and helm's own, executed over the
// same data helm gives a chart (.Values, .Release, .Chart, .Capabilities, .Files, .Template).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

// ChartMeta mirrors helm's chart.Metadata so templates read .Chart.Name, .Chart.AppVersion, ...
type ChartMeta struct {
	APIVersion   string            `yaml:"apiVersion"`
	Name         string            `yaml:"name"`
	Version      string            `yaml:"version"`
	AppVersion   string            `yaml:"appVersion"`
	KubeVersion  string            `yaml:"kubeVersion"`
	Description  string            `yaml:"description"`
	Type         string            `yaml:"type"`
	Home         string            `yaml:"home"`
	Icon         string            `yaml:"icon"`
	Deprecated   bool              `yaml:"deprecated"`
	Keywords     []string          `yaml:"keywords"`
	Sources      []string          `yaml:"sources"`
	Annotations  map[string]string `yaml:"annotations"`
	Maintainers  []interface{}     `yaml:"maintainers"`
	Dependencies []interface{}     `yaml:"dependencies"`
}

type Release struct {
	Name      string
	Namespace string
	Service   string
	Revision  int
	IsInstall bool
	IsUpgrade bool
}

type RenderOptions struct {
	ChartDir    string
	Release     Release
	Values      map[string]interface{}
	APIVersions []string
	KubeVersion string
	// Strict makes a reference to a missing map key an error (helm lint --strict) instead of empty.
	Strict bool
	// Cluster is what `lookup` sees. nil models `helm template` (and GitOps tools rendering
	// without a cluster): every lookup is empty. A non-nil list models `helm install/upgrade`
	// against a cluster holding exactly these objects (an empty list: a cluster with nothing).
	Cluster []map[string]interface{}
	// Notes renders templates/NOTES.txt alone (what `helm install` prints) instead of the objects.
	Notes bool
}

// Document is one rendered YAML document and the template it came from.
type Document struct {
	Source string
	Body   string
	Kind   string
	Name   string
	Hook   bool
}

// includeDepthLimit stops a template that includes itself forever, as helm does.
const includeDepthLimit = 1000

// loadChart reads Chart.yaml, the templates and the other files of a chart directory.
func loadChart(dir string) (ChartMeta, map[string]string, Files, error) {
	var meta ChartMeta
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return meta, nil, nil, fmt.Errorf("not a chart directory: %w", err)
	}
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		return meta, nil, nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if meta.Name == "" || meta.Version == "" {
		return meta, nil, nil, errors.New("Chart.yaml: name and version are required")
	}
	templates := map[string]string{}
	files := Files{}
	err = filepath.WalkDir(dir, func(path string, entry os.DirEntry, walkErr error) error {
		if walkErr != nil || entry.IsDir() {
			return walkErr
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[meta.Name+"/"+rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == ".helmignore" || strings.HasPrefix(rel, "charts/"):
		default:
			files[rel] = data
		}
		return nil
	})
	return meta, templates, files, err
}

// toYAML marshals like helm's toYaml (sigs.k8s.io/yaml): two-space indent, whole numbers without
// an exponent, no trailing newline.
func toYAML(value interface{}) string {
	var buf bytes.Buffer
	encoder := yaml.NewEncoder(&buf)
	encoder.SetIndent(2)
	if err := encoder.Encode(wholeNumbers(value)); err != nil {
		return ""
	}
	_ = encoder.Close()
	return strings.TrimSuffix(buf.String(), "\n")
}

func wholeNumbers(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(v))
		for key, item := range v {
			out[key] = wholeNumbers(item)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, item := range v {
			out[i] = wholeNumbers(item)
		}
		return out
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return int64(v)
		}
		return v
	default:
		return v
	}
}

func fromYAML(text string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(text), &out); err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return jsonNumbers(out).(map[string]interface{})
}

func fromYAMLArray(text string) []interface{} {
	out := []interface{}{}
	if err := yaml.Unmarshal([]byte(text), &out); err != nil {
		return []interface{}{err.Error()}
	}
	return jsonNumbers(out).([]interface{})
}

func fromJSONArray(text string) []interface{} {
	out := []interface{}{}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return []interface{}{err.Error()}
	}
	return out
}

func toJSON(value interface{}) string {
	data, err := json.Marshal(value)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(text string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return out
}

// required fails the render when a value is missing: nil, or an empty string.
func required(message string, value interface{}) (interface{}, error) {
	if value == nil {
		return nil, errors.New(message)
	}
	if s, ok := value.(string); ok && s == "" {
		return nil, errors.New(message)
	}
	return value, nil
}

// newLookup answers like helm's lookup: one object by name (an empty map when it does not exist),
// or with name "" a list {"items": [...]} of that kind in the namespace ("" = every namespace).
// Without a cluster (helm template) it finds nothing at all.
func newLookup(cluster []map[string]interface{}) func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	return func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		if cluster == nil {
			return map[string]interface{}{}, nil
		}
		var items []interface{}
		for _, object := range cluster {
			if object["apiVersion"] != apiVersion || object["kind"] != kind {
				continue
			}
			meta, _ := object["metadata"].(map[string]interface{})
			if namespace != "" && meta["namespace"] != namespace {
				continue
			}
			if name == "" {
				items = append(items, deepCopy(object))
				continue
			}
			if meta["name"] == name {
				return deepCopy(object).(map[string]interface{}), nil
			}
		}
		if name == "" {
			return map[string]interface{}{"apiVersion": apiVersion, "kind": kind + "List", "items": items}, nil
		}
		return map[string]interface{}{}, nil
	}
}

// deepCopy keeps a template that modifies a looked-up object from changing the cluster's copy.
func deepCopy(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(v))
		for key, item := range v {
			out[key] = deepCopy(item)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, item := range v {
			out[i] = deepCopy(item)
		}
		return out
	default:
		return v
	}
}

// funcMap builds sprig's functions plus helm's, bound to the template set t.
func funcMap(t **template.Template, cluster []map[string]interface{}) template.FuncMap {
	funcs := sprig.TxtFuncMap()
	// helm removes these: a chart must not read the environment of whoever renders it.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	depth := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] >= includeDepthLimit {
			return "", fmt.Errorf("include %q: too deep (recursive template?)", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var buf strings.Builder
		err := (*t).ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := (*t).Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		var buf strings.Builder
		if err := parsed.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = required
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["fromYamlArray"] = fromYAMLArray
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["fromJsonArray"] = fromJSONArray
	funcs["lookup"] = newLookup(cluster)
	funcs["fail"] = func(message string) (string, error) { return "", errors.New(message) }
	return funcs
}

// Render executes every template of the chart except partials (_*) and NOTES.txt, and returns
// the non-empty documents in helm's install order, hooks last. With options.Notes it executes
// NOTES.txt alone and returns its text as the one document's Body (Kind "NOTES").
func Render(options RenderOptions) ([]Document, error) {
	meta, sources, files, err := loadChart(options.ChartDir)
	if err != nil {
		return nil, err
	}
	var root *template.Template
	root = template.New(meta.Name)
	root.Funcs(funcMap(&root, options.Cluster))
	if options.Strict {
		root.Option("missingkey=error")
	} else {
		root.Option("missingkey=zero")
	}
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := root.New(name).Parse(sources[name]); err != nil {
			return nil, err
		}
	}
	kubeVersion := options.KubeVersion
	if kubeVersion == "" {
		kubeVersion = "1.30.0"
	}
	kubeVersion = strings.TrimPrefix(kubeVersion, "v")
	parts := strings.SplitN(kubeVersion, ".", 3)
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	capabilities := Capabilities{
		KubeVersion: KubeVersion{Version: "v" + strings.Join(parts, "."), Major: parts[0], Minor: parts[1], GitVersion: "v" + strings.Join(parts, ".")},
		APIVersions: append(append(APIVersions{}, builtinAPIVersions...), options.APIVersions...),
		HelmVersion: map[string]string{"version": "v3.15.0"},
	}
	var documents []Document
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || (base == "NOTES.txt") != options.Notes {
			continue
		}
		// helm renders only the top chart's NOTES.txt.
		if options.Notes && name != meta.Name+"/templates/NOTES.txt" {
			continue
		}
		data := map[string]interface{}{
			"Values":       options.Values,
			"Release":      options.Release,
			"Chart":        meta,
			"Capabilities": capabilities,
			"Files":        files,
			"Template":     map[string]string{"Name": name, "BasePath": meta.Name + "/templates"},
		}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return nil, err
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		if options.Notes {
			documents = append(documents, Document{Source: name, Body: rendered, Kind: "NOTES"})
			continue
		}
		docs, err := splitDocuments(name, rendered)
		if err != nil {
			return nil, err
		}
		documents = append(documents, docs...)
	}
	sort.SliceStable(documents, func(i, j int) bool {
		if documents[i].Hook != documents[j].Hook {
			return !documents[i].Hook
		}
		return kindRank(documents[i].Kind) < kindRank(documents[j].Kind)
	})
	return documents, nil
}

// splitDocuments cuts a template's output at `---` lines, drops empty documents, and checks that
// each one is YAML (helm refuses to install what it cannot parse).
func splitDocuments(source, text string) ([]Document, error) {
	var documents []Document
	lines := strings.Split(text, "\n")
	var current []string
	flush := func() error {
		body := strings.TrimSpace(strings.Join(current, "\n"))
		current = nil
		if body == "" || isOnlyComments(body) {
			return nil
		}
		var head struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name        string            `yaml:"name"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(body), &head); err != nil {
			return fmt.Errorf("%s: rendered YAML does not parse: %w\n%s", source, err, body)
		}
		_, hook := head.Metadata.Annotations["helm.sh/hook"]
		documents = append(documents, Document{Source: source, Body: body, Kind: head.Kind, Name: head.Metadata.Name, Hook: hook})
		return nil
	}
	for _, line := range lines {
		if strings.TrimRight(line, " \t") == "---" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		current = append(current, line)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return documents, nil
}

func isOnlyComments(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			return false
		}
	}
	return true
}

// installOrder is helm's order of kinds on install (releaseutil.InstallOrder, abridged).
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
	"RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
	"ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
	"IngressClass", "Ingress", "APIService",
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}
