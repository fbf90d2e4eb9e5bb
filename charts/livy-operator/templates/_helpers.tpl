{{/* Chart name, truncated to 63 characters (a label value). */}}
{{- define "livy-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "livy-operator.fullname" -}}
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

{{- define "livy-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "livy-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "livy-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "livy-operator.labels" -}}
helm.sh/chart: {{ include "livy-operator.chart" . }}
{{ include "livy-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: livy-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- include "livy-operator.commonLabels" . }}
{{- end }}

{{/* commonLabels, added to the labels of every object the chart renders (and of its pods). */}}
{{- define "livy-operator.commonLabels" -}}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the CRD: no instance or component (one CRD serves every release), commonLabels. */}}
{{- define "livy-operator.crdLabels" -}}
helm.sh/chart: {{ include "livy-operator.chart" . }}
app.kubernetes.io/name: livy-operator
app.kubernetes.io/part-of: livy-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- include "livy-operator.commonLabels" . }}
{{- end }}

{{/*
The minAvailable or maxUnavailable of a PodDisruptionBudget, from a value holding both: maxUnavailable when
it is set (a PDB takes only one of the two), else minAvailable.
*/}}
{{- define "livy-operator.pdbBudget" -}}
{{- if not (kindIs "invalid" .maxUnavailable) -}}
maxUnavailable: {{ .maxUnavailable }}
{{- else -}}
minAvailable: {{ .minAvailable }}
{{- end -}}
{{- end }}

{{- define "livy-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "livy-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "livy-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: forced by value, or needed because more than one replica runs. */}}
{{- define "livy-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{- end }}
{{- end }}

{{- define "livy-operator.leaseName" -}}
{{- default (printf "%s-leader" (include "livy-operator.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The operator's rules on LivySessions and the objects it owns. One list, used by the ClusterRole
(cluster-wide) or by each per-namespace Role (watchNamespaces); the chart README justifies every verb.
*/}}
{{- define "livy-operator.rules" -}}
- apiGroups: ["livy.dev"]
  resources: ["livysessions"]
  # create and delete: the warm pool's servers are LivySessions the pool owns (docs/warm-pool.md)
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["livy.dev"]
  resources: ["livysessions/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["livy.dev"]
  resources: ["livysessionpools"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["livy.dev"]
  resources: ["livysessionpools/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["livy.dev"]
  resources: ["livysessions/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.secrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- if .Values.sessionCredentials.enabled }}
# each LivySession's credential Secret: written with its server, deleted with it (idle, failure)
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch", "delete"]
{{- end }}
# Spark's kubernetes mode: each LivySession's driver gets a ServiceAccount and a RoleBinding to the
# drivers' ClusterRole in its namespace. `bind` on that one ClusterRole lets the operator create such
# RoleBindings without holding the rights they grant.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterroles"]
  verbs: ["bind"]
  resourceNames: [{{ include "livy-operator.sparkDriverRole" . | quote }}]
{{- if .Values.networkPolicy.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end }}

{{/* The ClusterRole bound to the Spark driver of each LivySession in kubernetes mode. */}}
{{- define "livy-operator.sparkDriverRole" -}}
{{- printf "%s-spark-driver" (include "livy-operator.fullname" .) }}
{{- end }}

{{/* The gateway: its own name, labels and selector (app.kubernetes.io/name=livy-gateway), so that no
selector of the operator's objects matches its pods and NetworkPolicies can admit it by label. */}}
{{- define "livy-operator.gatewayName" -}}
{{- printf "%s-gateway" (include "livy-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "livy-operator.gatewaySelectorLabels" -}}
app.kubernetes.io/name: livy-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "livy-operator.gatewayLabels" -}}
helm.sh/chart: {{ include "livy-operator.chart" . }}
{{ include "livy-operator.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: livy-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- include "livy-operator.commonLabels" . }}
{{- end }}

{{- define "livy-operator.gatewayServiceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "livy-operator.gatewayName" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The gateway's rules on LivySessions: the cache (get, list, watch) and the demand annotation (patch). */}}
{{- define "livy-operator.gatewayRules" -}}
- apiGroups: ["livy.dev"]
  resources: ["livysessions"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{- define "livy-operator.sessionKeySecret" -}}
{{- printf "%s-session-key" (include "livy-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
