{{/* The release's full name: the release name, with the chart's name unless it already has it. */}}
{{- define "bentham-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects carry the namespace too: two releases of the same name never collide. */}}
{{- define "bentham-operator.clusterName" -}}
{{- printf "%s:%s" .Release.Namespace (include "bentham-operator.fullname" .) -}}
{{- end -}}

{{- define "bentham-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bentham-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bentham-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "bentham-operator.labels" -}}
{{ include "bentham-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "bentham-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The leader Lease's name: the operator's default (--lease-name). */}}
{{- define "bentham-operator.leaseName" -}}
bentham-operator
{{- end -}}

{{/*
Namespaced mode: watchNamespaces names the namespaces and rbac.clusterWide is off. The operator's
rights on Studies, Jobs, pods and Events are then Roles in those namespaces, never cluster-wide.
*/}}
{{- define "bentham-operator.namespaced" -}}
{{- if and .Values.watchNamespaces (not .Values.rbac.clusterWide) -}}
{{- range .Values.watchNamespaces -}}
{{- if regexMatch "[*?\\[\\]!]" . -}}
{{- fail (printf "watchNamespaces: %q is a pattern, and a Role can only be made in a namespace named in advance: list the namespaces, or set rbac.clusterWide=true to grant Studies, Jobs, pods and Events in every namespace (docs/install.md, \"RBAC\")" .) -}}
{{- end -}}
{{- end -}}
{{- if .Values.rbac.secretAccess.clusterWide -}}
{{- fail "rbac.secretAccess.clusterWide grants every Secret in the cluster, and watchNamespaces limits the operator to some namespaces: list those whose Secrets it reads in rbac.secretAccess.namespaces" -}}
{{- end -}}
{{- range .Values.rbac.secretAccess.namespaces -}}
{{- if not (has . $.Values.watchNamespaces) -}}
{{- fail (printf "rbac.secretAccess.namespaces: %q is not in watchNamespaces; the operator reads Secrets only in the namespaces of the studies it runs" .) -}}
{{- end -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/*
What the operator does to the studies of a namespace: the rules of its Role in each watched
namespace, or of its ClusterRole when it watches every namespace (docs/install.md lists why each).
*/}}
{{- define "bentham-operator.studyRules" -}}
- apiGroups: [bentham.io]
  resources: [studies]
  verbs: [list, watch]
- apiGroups: [bentham.io]
  resources: [studies/status]
  verbs: [patch]
# A Job's ownerReference blocks its Study's deletion; OwnerReferencesPermissionEnforcement (OpenShift)
# admits that only from who may update the Study's finalizers. CRDs serve no such subresource: it changes nothing.
- apiGroups: [bentham.io]
  resources: [studies/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, deletecollection]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
