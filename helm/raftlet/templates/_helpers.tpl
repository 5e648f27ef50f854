{{/* Chart name, shortened to the 63 characters of a DNS label. */}}
{{- define "raftlet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: the release name when it already contains the chart name, else
<release>-<chart>. Kept to 52 characters because the StatefulSet adds "-<ordinal>" to pod names and
the pods' hostnames plus the "controller-revision-hash" label must stay under 63.
*/}}
{{- define "raftlet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "raftlet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that never change for the life of a release: the pods' and Services' selector. */}}
{{- define "raftlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "raftlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "raftlet.labels" -}}
helm.sh/chart: {{ include "raftlet.chart" . }}
{{ include "raftlet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The headless Service: peers find each other through its SRV record _raft._tcp.<name>. */}}
{{- define "raftlet.headlessServiceName" -}}
{{- include "raftlet.fullname" . -}}
{{- end -}}

{{- define "raftlet.leaderServiceName" -}}
{{- printf "%s-leader" (include "raftlet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "raftlet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "raftlet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The token Secret: auth.existingSecret, or clusterToken.existingSecret (the name before 0.2, still
honoured), or the chart-managed <fullname>-cluster-token.
*/}}
{{- define "raftlet.existingTokenSecret" -}}
{{- .Values.auth.existingSecret | default (dig "clusterToken" "existingSecret" "" .Values) -}}
{{- end -}}

{{- define "raftlet.tokenSecretName" -}}
{{- include "raftlet.existingTokenSecret" . | default (printf "%s-cluster-token" (include "raftlet.fullname" .)) -}}
{{- end -}}

{{- define "raftlet.tokenKey" -}}
{{- if and (not .Values.auth.existingSecret) (dig "clusterToken" "existingSecret" "" .Values) -}}
{{- dig "clusterToken" "key" "token" .Values -}}
{{- else -}}
{{- .Values.auth.key -}}
{{- end -}}
{{- end -}}

{{/*
Whether `lookup` can see the cluster. helm template, --dry-run without =server, and GitOps tools
that render offline get an empty answer for every lookup, which is indistinguishable from "not
created yet" unless something that always exists is looked up too: the kube-root-ca.crt ConfigMap
that Kubernetes publishes in every namespace (the pods mount it; see the StatefulSet).
*/}}
{{- define "raftlet.canLookup" -}}
{{- if lookup "v1" "ConfigMap" .Release.Namespace "kube-root-ca.crt" -}}true{{- end -}}
{{- end -}}

{{/* The message for a chart-made secret that cannot be kept, and what to do instead. */}}
{{- define "raftlet.cannotKeepSecret" -}}
{{- $ := index . 0 -}}
{{- printf "cannot look up Secret %s in namespace %s, so the %s it holds cannot be kept: this render has no cluster to ask (helm template, helm install --dry-run, or a GitOps tool), or the namespace does not exist yet (create it before installing, rather than --create-namespace). A new random %s on every render would lock the members out of each other. %s" (index . 1) $.Release.Namespace (index . 2) (index . 2) (index . 3) -}}
{{- end -}}

{{/*
The cluster token of a chart-managed Secret: auth.token when given; else the one already in the
cluster (so an upgrade keeps it); else, on a first install that can see the cluster, a new random
one. It never invents a token where lookup sees nothing: a render without a cluster would change
the token every time, and an upgrade whose Secret vanished would hand new pods a token the running
members do not accept. Cached in .Values for the rest of the render.
*/}}
{{- define "raftlet.clusterToken" -}}
{{- if not (hasKey .Values "raftletRenderedClusterToken") -}}
{{- $name := include "raftlet.tokenSecretName" . -}}
{{- $key := include "raftlet.tokenKey" . -}}
{{- $token := "" -}}
{{- if .Values.auth.token -}}
{{- $token = .Values.auth.token -}}
{{- range $line := splitList "\n" (trimSuffix "\n" $token) -}}
{{- if lt (len $line) 16 -}}
{{- fail (printf "auth.token: every line must be a token of at least 16 characters (raftlet refuses shorter ones); got a line of %d" (len $line)) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $data := dig "data" $key "" $existing -}}
{{- if $data -}}
{{- $token = b64dec $data -}}
{{- else if not (include "raftlet.canLookup" .) -}}
{{- fail (include "raftlet.cannotKeepSecret" (list . $name "cluster token" "Create the Secret yourself (key auth.key) and set auth.existingSecret, or set auth.token; see docs/shipping.md.")) -}}
{{- else if .Release.IsUpgrade -}}
{{- fail (printf "Secret %s (key %s) holding the cluster token is missing in namespace %s, and this is an upgrade: the running members keep the token they have, so a new one would lock new pods out. Set auth.token to the members' token (kubectl exec POD -c raftlet -- cat /etc/raftlet/cluster-token/%s), or auth.existingSecret." $name $key .Release.Namespace $key) -}}
{{- else -}}
{{- $token = randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "raftletRenderedClusterToken" $token -}}
{{- end -}}
{{- index .Values "raftletRenderedClusterToken" -}}
{{- end -}}

{{/* The Secret with the peer certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "raftlet.tlsSecretName" -}}
{{- if eq .Values.tls.source "existingSecret" -}}
{{- required "tls.existingSecret must name a Secret with tls.crt, tls.key and ca.crt when tls.source is existingSecret" .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-peer-tls" (include "raftlet.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Every name a member is reached by: each member's <pod>.<headless>.<namespace>.svc[.<domain>], a
wildcard under the headless Service (so `kubectl scale` past .Values.replicas still verifies), and
the headless Service itself (the backup job reaches "any member" through it).
*/}}
{{- define "raftlet.peerDnsNames" -}}
{{- $headless := include "raftlet.headlessServiceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list -}}
{{- range $i := until (.Values.replicas | int) -}}
{{- $pod := printf "%s-%d.%s.%s.svc" (include "raftlet.fullname" $) $i $headless $ns -}}
{{- $names = append $names $pod -}}
{{- $names = append $names (printf "%s.%s" $pod $.Values.clusterDomain) -}}
{{- end -}}
{{- $names = append $names (printf "*.%s.%s.svc" $headless $ns) -}}
{{- $names = append $names (printf "*.%s.%s.svc.%s" $headless $ns .Values.clusterDomain) -}}
{{- $names = append $names (printf "%s.%s.svc" $headless $ns) -}}
{{- $names = append $names (printf "%s.%s.svc.%s" $headless $ns .Values.clusterDomain) -}}
{{- toJson $names -}}
{{- end -}}

{{/*
The chart-generated CA and certificate, as JSON {"ca.crt","tls.crt","tls.key"}: the ones already
in the cluster (an upgrade keeps them), else new ones on a first install that can see the cluster.
Like the token, never made anew where lookup sees nothing. Cached for the rest of the render.
*/}}
{{- define "raftlet.generatedTls" -}}
{{- if not (hasKey .Values "raftletRenderedTls") -}}
{{- $name := include "raftlet.tlsSecretName" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $out := dict -}}
{{- if and (dig "data" "tls.crt" "" $existing) (dig "data" "tls.key" "" $existing) (dig "data" "ca.crt" "" $existing) -}}
{{- $out = dict "ca.crt" (index $existing.data "ca.crt") "tls.crt" (index $existing.data "tls.crt") "tls.key" (index $existing.data "tls.key") -}}
{{- else if not (include "raftlet.canLookup" .) -}}
{{- fail (include "raftlet.cannotKeepSecret" (list . $name "peer certificate and CA" "Use tls.source=certManager, or tls.source=existingSecret with a Secret you manage (tls.crt, tls.key, ca.crt); see docs/shipping.md.")) -}}
{{- else -}}
{{- $days := .Values.tls.generate.validityDays | int -}}
{{- $ca := genCA (printf "%s raftlet peer CA" (include "raftlet.fullname" .)) $days -}}
{{- $cert := genSignedCert (include "raftlet.fullname" .) nil (include "raftlet.peerDnsNames" . | fromJsonArray) $days $ca -}}
{{- $out = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "raftletRenderedTls" $out -}}
{{- end -}}
{{- toJson (index .Values "raftletRenderedTls") -}}
{{- end -}}

{{/* What raftlet needs to speak to members: the token file, and the peer certificate with TLS. */}}
{{- define "raftlet.peerAuthEnv" -}}
# A file, never a variable: raftlet re-reads it when the Secret changes.
- name: RAFTLET_CLUSTER_TOKEN_FILE
  value: /etc/raftlet/cluster-token/{{ include "raftlet.tokenKey" . }}
{{- if .Values.tls.enabled }}
- name: RAFTLET_PEER_TLS_CERT_FILE
  value: /etc/raftlet/tls/tls.crt
- name: RAFTLET_PEER_TLS_KEY_FILE
  value: /etc/raftlet/tls/tls.key
- name: RAFTLET_PEER_TLS_CA_FILE
  value: /etc/raftlet/tls/ca.crt
{{- end }}
{{- end -}}

{{/* Directory mounts (not subPath), so the kubelet's updates reach the container. */}}
{{- define "raftlet.peerAuthMounts" -}}
- name: cluster-token
  mountPath: /etc/raftlet/cluster-token
  readOnly: true
{{- if .Values.tls.enabled }}
- name: peer-tls
  mountPath: /etc/raftlet/tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "raftlet.peerAuthVolumes" -}}
- name: cluster-token
  secret:
    secretName: {{ include "raftlet.tokenSecretName" . }}
    defaultMode: 288 # 0440: owner and fsGroup read
{{- if .Values.tls.enabled }}
- name: peer-tls
  secret:
    secretName: {{ include "raftlet.tlsSecretName" . }}
    defaultMode: 288 # 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "raftlet.peerScheme" -}}
{{- if .Values.tls.enabled -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* The backup job's pods: not members (different name label), but allowed on the peer port. */}}
{{- define "raftlet.backupSelectorLabels" -}}
app.kubernetes.io/name: {{ include "raftlet.name" . }}-backup
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "raftlet.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "raftlet.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Whether the application is the image's demo app, whose answer `helm test` knows how to read. */}}
{{- define "raftlet.isDemoApp" -}}
{{- if and .Values.app.enabled (not .Values.app.image.repository) (not .Values.app.command) (eq (first (.Values.app.args | default (list ""))) "demo-app") -}}true{{- end -}}
{{- end -}}

{{- define "raftlet.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "raftlet.appImage" -}}
{{- if .Values.app.image.repository -}}
{{- printf "%s:%s" .Values.app.image.repository (required "app.image.tag is required when app.image.repository is set" .Values.app.image.tag) -}}
{{- else -}}
{{- include "raftlet.image" . -}}
{{- end -}}
{{- end -}}

{{/* bootstrapExpect may be null, which helm may also drop from the values: both mean
min(replicas, 3). Only the lowest ordinals bootstrap and later pods join as learners, so 3 is
enough for any size, and a value that does not follow replicas lets `kubectl scale` 3 -> 5 -> 3
add and remove members without restarting the existing ones. */}}
{{- define "raftlet.bootstrapExpect" -}}
{{- $expect := get .Values "bootstrapExpect" -}}
{{- if or (kindIs "invalid" $expect) (eq (toString $expect) "") -}}
{{- min (.Values.replicas | int) 3 -}}
{{- else -}}
{{- $expect | int -}}
{{- end -}}
{{- end -}}

{{/* prometheus-operator objects need its CRDs; say so instead of failing at apply time. */}}
{{- define "raftlet.requireMonitoringAPI" -}}
{{- if not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}
{{- fail "monitoring.* needs the prometheus-operator CRDs (API monitoring.coreos.com/v1) in the cluster; install them first, or with helm template pass --api-versions monitoring.coreos.com/v1" -}}
{{- end -}}
{{- end -}}

{{/*
The application's health URL for RAFTLET_APP_HEALTH_URL: app.healthUrl, else the app container's
readiness probe (httpGet path and port; a named port is looked up in app.ports) on 127.0.0.1.
*/}}
{{- define "raftlet.appHealthUrl" -}}
{{- if .Values.app.healthUrl -}}
{{- .Values.app.healthUrl -}}
{{- else -}}
{{- $get := (.Values.app.readinessProbe | default dict).httpGet | default dict -}}
{{- if not $get.path -}}
{{- fail "app.leadershipFollowsHealth needs app.healthUrl or an httpGet app.readinessProbe" -}}
{{- end -}}
{{- $port := $get.port -}}
{{- range .Values.app.ports -}}
{{- if eq (toString .name) (toString $port) -}}{{- $port = .containerPort -}}{{- end -}}
{{- end -}}
{{- printf "http://127.0.0.1:%v%s" $port $get.path -}}
{{- end -}}
{{- end -}}
