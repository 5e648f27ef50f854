// helm-render renders a Helm chart the way `helm template` does, for machines without helm:
// text/template + sprig + helm's functions, values.yaml merged with -f files and --set, and output
// as `---` separated documents with `# Source:` comments. `lookup` finds nothing (as in
// `helm template`) unless --cluster names a file of objects that stand for the cluster (as in
// `helm install`/`upgrade`); --notes prints the rendered NOTES.txt instead of the objects;
// values.schema.json is not checked (see test/ship).
//
// Build (GOPATH mode over Debian's Go sources):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o helm-render ./tools/helm-render
//
// Usage:
//
//	helm-render [--name NAME] [--namespace NS] [-f values.yaml]... [--set a.b=c]...
//	            [--set-string a.b=c]... [--api-versions group/version]... [--kube-version 1.30]
//	            [--strict] [--is-upgrade] [--cluster objects.yaml] [--notes] CHART_DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// setFlag keeps --set and --set-string in command-line order, as helm applies them.
type setFlag struct {
	list     *[]setExpr
	asString bool
}

type setExpr struct {
	expr     string
	asString bool
}

func (s setFlag) String() string { return "" }
func (s setFlag) Set(v string) error {
	*s.list = append(*s.list, setExpr{expr: v, asString: s.asString})
	return nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	flags := flag.NewFlagSet("helm-render", flag.ContinueOnError)
	name := flags.String("name", "release-name", "release name (.Release.Name)")
	namespace := flags.String("namespace", "default", "release namespace (.Release.Namespace)")
	kubeVersion := flags.String("kube-version", "1.30.0", "Kubernetes version for .Capabilities.KubeVersion")
	strict := flags.Bool("strict", false, "fail on a reference to a missing value instead of rendering it empty")
	isUpgrade := flags.Bool("is-upgrade", false, "set .Release.IsUpgrade instead of .Release.IsInstall")
	clusterFile := flags.String("cluster", "", "YAML file of the objects `lookup` sees (--- separated or a List); unset = no cluster, as helm template")
	notes := flags.Bool("notes", false, "print the rendered NOTES.txt instead of the objects")
	var valueFiles, apiVersions repeated
	var sets []setExpr
	flags.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flags.Var(&valueFiles, "values", "same as -f")
	flags.Var(setFlag{list: &sets}, "set", "set a value: a.b=c (repeatable, comma-separated pairs)")
	flags.Var(setFlag{list: &sets, asString: true}, "set-string", "set a string value: a.b=c")
	flags.Var(&apiVersions, "api-versions", "an extra API version for .Capabilities.APIVersions (repeatable)")
	flags.Var(&apiVersions, "a", "same as --api-versions")

	// Allow the chart directory anywhere among the flags, as helm does.
	var positional []string
	for {
		if err := flags.Parse(args); err != nil {
			return 2
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		args = flags.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintln(os.Stderr, "helm-render: give exactly one chart directory, e.g. helm-render --name raftlet helm/raftlet")
		return 2
	}
	chartDir := positional[0]

	values, err := readValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
		return 1
	}
	for _, file := range valueFiles {
		override, err := readValuesFile(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
			return 1
		}
		values = coalesce(values, override)
	}
	for _, set := range sets {
		override, err := parseSet(set.expr, set.asString)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
			return 1
		}
		values = coalesce(values, override)
	}

	var cluster []map[string]interface{}
	if *clusterFile != "" {
		cluster, err = readClusterFile(*clusterFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
			return 1
		}
	}

	documents, err := Render(RenderOptions{
		ChartDir:    chartDir,
		Release:     Release{Name: *name, Namespace: *namespace, Service: "Helm", Revision: 1, IsInstall: !*isUpgrade, IsUpgrade: *isUpgrade},
		Values:      values,
		APIVersions: apiVersions,
		KubeVersion: *kubeVersion,
		Strict:      *strict,
		Cluster:     cluster,
		Notes:       *notes,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "helm-render: %v\n", err)
		return 1
	}
	var out strings.Builder
	if *notes {
		for _, doc := range documents {
			out.WriteString(doc.Body)
		}
		_, err := os.Stdout.WriteString(out.String())
		if err != nil {
			return 1
		}
		return 0
	}
	for _, doc := range documents {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", doc.Source, doc.Body)
	}
	if _, err := os.Stdout.WriteString(out.String()); err != nil {
		return 1
	}
	return 0
}
