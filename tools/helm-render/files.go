package main

// .Files and .Capabilities: the parts of helm's template data that are objects with methods.

import (
	"encoding/base64"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Files is helm's .Files: the chart's files outside templates/ and its metadata files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }

// Get returns a file's text, or "" when the chart has no such file (as helm does).
func (f Files) Get(name string) string { return string(f[name]) }

// Glob keeps the files whose chart-relative path matches pattern (`**` crosses directories).
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if globMatch(pattern, name) {
			out[name] = data
		}
	}
	return out
}

// AsConfig renders the files as a ConfigMap data block keyed by base name.
func (f Files) AsConfig() string {
	return f.asMap(func(data []byte) string { return string(data) })
}

// AsSecrets renders the files as a Secret data block, base64-encoded.
func (f Files) AsSecrets() string {
	return f.asMap(func(data []byte) string { return base64.StdEncoding.EncodeToString(data) })
}

func (f Files) Lines(name string) []string {
	text := strings.TrimSuffix(string(f[name]), "\n")
	if text == "" {
		return []string{}
	}
	return strings.Split(text, "\n")
}

func (f Files) asMap(encode func([]byte) string) string {
	if len(f) == 0 {
		return ""
	}
	out := map[string]string{}
	for _, name := range f.sortedNames() {
		out[path.Base(name)] = encode(f[name])
	}
	text, err := yaml.Marshal(out)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(text), "\n")
}

func (f Files) sortedNames() []string {
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func globMatch(pattern, name string) bool {
	if !strings.Contains(pattern, "**") {
		ok, _ := path.Match(pattern, name)
		return ok
	}
	prefix, suffix, _ := strings.Cut(pattern, "**")
	if !strings.HasPrefix(name, prefix) {
		return false
	}
	rest := strings.TrimPrefix(name, prefix)
	suffix = strings.TrimPrefix(suffix, "/")
	if suffix == "" {
		return true
	}
	segments := strings.Split(rest, "/")
	for i := range segments {
		if ok, _ := path.Match(suffix, strings.Join(segments[i:], "/")); ok {
			return true
		}
	}
	return false
}

// APIVersions is helm's .Capabilities.APIVersions.
type APIVersions []string

// Has reports whether a group/version (or group/version/Kind) is served.
func (a APIVersions) Has(version string) bool {
	for _, v := range a {
		if v == version {
			return true
		}
	}
	return false
}

type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions APIVersions
	HelmVersion map[string]string
}

// builtinAPIVersions is what a plain Kubernetes 1.30 API server serves (the groups charts test).
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"rbac.authorization.k8s.io/v1", "coordination.k8s.io/v1", "events.k8s.io/v1",
	"networking.k8s.io/v1", "storage.k8s.io/v1", "discovery.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "scheduling.k8s.io/v1",
}
