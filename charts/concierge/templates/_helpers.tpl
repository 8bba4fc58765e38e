{{/*
Names, labels, the image and the hardened pod settings every Concierge component shares.
*/}}

{{/* Fixed, not overridable: the operator's tenant pods and the NetworkPolicies select on this name. */}}
{{- define "concierge.name" -}}
concierge
{{- end }}

{{/* Release-scoped prefix of every object name: the release name when it already says "concierge". */}}
{{- define "concierge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "concierge.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "concierge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<fullname>-<suffix>`, cut to a 63-character DNS label. Call with (list $ "suffix"). */}}
{{- define "concierge.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "concierge.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "root" $ "component" "edge").
The operator's tenant pods carry app.kubernetes.io/name=concierge too; instance tells ours apart.
*/}}
{{- define "concierge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "concierge.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Every label of one component's objects. Call with (dict "root" $ "component" "edge"). */}}
{{- define "concierge.labels" -}}
helm.sh/chart: {{ include "concierge.chart" .root }}
{{ include "concierge.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: concierge
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The one image of every Concierge component. */}}
{{- define "concierge.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* A model id as a name part and label value: `all-MiniLM-L6-v2` → `all-minilm-l6-v2` (as the operator does). */}}
{{- define "concierge.modelSlug" -}}
{{- regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trimAll "-" | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* Name of the embedding Deployment and Service of one model id. Call with (list $ "model-id"). */}}
{{- define "concierge.embeddingName" -}}
{{- $root := index . 0 }}
{{- include "concierge.componentName" (list $root (printf "embedding-%s" (include "concierge.modelSlug" (index . 1)))) }}
{{- end }}

{{/* Name of the Secret whose key `url` is the PostgreSQL URL (made by the chart or given). */}}
{{- define "concierge.databaseSecret" -}}
{{- if .Values.postgres.enabled }}
{{- include "concierge.componentName" (list . "database") }}
{{- else }}
{{- .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{/* Pod-level security context of Concierge pods (the image's user is 10001). */}}
{{- define "concierge.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security context: non-root, read-only root filesystem, no privileges. */}}
{{- define "concierge.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser | default 10001 }}
{{- with .runAsGroup }}
runAsGroup: {{ . }}
{{- end }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* nodeSelector, tolerations, affinity and priority class of one component's pods. */}}
{{- define "concierge.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/*
Checks the schema cannot express; each failure names the value to set.
*/}}
{{- define "concierge.validate" -}}
{{- if and .Values.postgres.enabled .Values.database.existingSecret }}
{{- fail (printf "database: set either postgres.enabled=true (the chart runs Postgres and makes the Secret) or database.existingSecret=%q, not both" .Values.database.existingSecret) }}
{{- end }}
{{- if not (or .Values.postgres.enabled .Values.database.existingSecret) }}
{{- fail (printf "database: no database configured; set database.existingSecret to a Secret in namespace %s whose key `url` is the PostgreSQL URL, or set postgres.enabled=true for an in-cluster Postgres with pgvector" .Release.Namespace) }}
{{- end }}
{{- if not .Values.embedding.models }}
{{- fail "embedding.models is empty; list at least one model, e.g. {id: all-MiniLM-L6-v2}" }}
{{- end }}
{{- $slugs := dict }}
{{- range $i, $m := .Values.embedding.models }}
{{- $slug := include "concierge.modelSlug" $m.id }}
{{- if not $slug }}
{{- fail (printf "embedding.models[%d].id %q has no letter or digit to name its Deployment after" $i $m.id) }}
{{- end }}
{{- if hasKey $slugs $slug }}
{{- fail (printf "embedding.models[%d].id %q has the same Kubernetes name (%s) as embedding.models[%d]; ids must differ in more than case and punctuation" $i $m.id $slug (get $slugs $slug)) }}
{{- end }}
{{- $_ := set $slugs $slug $i }}
{{- if and (not $m.path) (ne $m.id "all-MiniLM-L6-v2") }}
{{- fail (printf "embedding.models[%d] (%s): set path to the model's folder in the model cache; only all-MiniLM-L6-v2 ships in the image" $i $m.id) }}
{{- end }}
{{- $as := mergeOverwrite (deepCopy $.Values.embedding.autoscaling) ($m.autoscaling | default dict) }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "embedding.models[%d] (%s): autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" $i $m.id (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- end }}
{{- with .Values.edge.autoscaling }}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) }}
{{- fail (printf "edge.autoscaling.minReplicas (%d) is above edge.autoscaling.maxReplicas (%d)" (int .minReplicas) (int .maxReplicas)) }}
{{- end }}
{{- end }}
{{- end }}
