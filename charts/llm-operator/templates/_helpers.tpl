{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "llm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release already contains it. */}}
{{- define "llm-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels (helm.sh/chart, app.kubernetes.io/*). */}}
{{- define "llm-operator.labels" -}}
helm.sh/chart: {{ include "llm-operator.chart" . }}
{{ include "llm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-operator
{{- end }}

{{- define "llm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election is on when more than one replica runs. */}}
{{- define "llm-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}{{ include "llm-operator.fullname" . }}{{ end }}
{{- end }}

{{- define "llm-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The rules on namespaced resources: in the ClusterRole, or in a Role per watched namespace. */}}
{{- define "llm-operator.namespacedRules" -}}
# The LLMDeployments: watched by kopf, annotated with its progress (patch).
- apiGroups: [llmops.dev]
  resources: [llmdeployments]
  verbs: [get, list, watch, patch]
# Status written by server-side apply; replicas changed through /scale by the autoscaler.
- apiGroups: [llmops.dev]
  resources: [llmdeployments/status, llmdeployments/scale]
  verbs: [get, patch]
# Children, applied server-side (create + patch) and pruned when the spec drops them.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, persistentvolumeclaims]
  verbs: [get, create, patch, delete]
# The model cache's fill Job: applied, replaced when the model changes, watched for status.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, create, patch, delete]
# Scale to zero: each object's activator gets a ServiceAccount, a Role and its binding, and a
# Lease it reports on (watched). The API server lets a Role grant only what its creator holds,
# so the operator holds what the activator's Role grants: get/patch on leases, list on
# EndpointSlices (which it never calls itself).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch, delete]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
# Pod readiness and scheduling failures feed the status.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# A Secret an LLMDeployment names must carry llmops.dev/allow-reference=true: the operator
# reads its metadata only (PartialObjectMetadata), by name; never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Events explain every decision.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
