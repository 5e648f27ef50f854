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

{{- define "raftlet.tokenSecretName" -}}
{{- default (printf "%s-cluster-token" (include "raftlet.fullname" .)) .Values.clusterToken.existingSecret -}}
{{- end -}}

{{/*
The cluster token of a chart-managed Secret: the one already in the cluster (so an upgrade keeps
it), else a new random one. Cached in .Values for the rest of the render, so that the Secret and
the pod template's checksum annotation see the same token.
*/}}
{{- define "raftlet.clusterToken" -}}
{{- if not (hasKey .Values "raftletRenderedClusterToken") -}}
{{- $token := randAlphaNum 48 -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "raftlet.tokenSecretName" .) -}}
{{- if and $existing (hasKey $existing "data") -}}
{{- if hasKey $existing.data .Values.clusterToken.key -}}
{{- $token = index $existing.data .Values.clusterToken.key | b64dec -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "raftletRenderedClusterToken" $token -}}
{{- end -}}
{{- index .Values "raftletRenderedClusterToken" -}}
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
