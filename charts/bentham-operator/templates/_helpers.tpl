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
