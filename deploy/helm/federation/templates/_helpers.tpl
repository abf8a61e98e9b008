{{/* The chart's name, and the prefix of every object it creates. */}}
{{- define "federation.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release> if it already contains the chart name, else <release>-<chart>; with release
     "federation" every object is named as in deploy/ (federation-controller, ...). */}}
{{- define "federation.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "federation.controller" -}}
{{- printf "%s-controller" (include "federation.fullname" .) -}}
{{- end -}}

{{- define "federation.selectorLabels" -}}
app.kubernetes.io/name: {{ include "federation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "federation.labels" -}}
{{ include "federation.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "federation.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "federation.controller" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "federation.fleetNamespace" -}}
{{- default .Release.Namespace .Values.fleetNamespace -}}
{{- end -}}

{{- define "federation.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-database" (include "federation.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "federation.apiTokenSecret" -}}
{{- if .Values.api.existingSecret -}}
{{- .Values.api.existingSecret -}}
{{- else -}}
{{- printf "%s-api-token" (include "federation.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "federation.encryptionKeySecret" -}}
{{- if .Values.encryption.existingSecret -}}
{{- .Values.encryption.existingSecret -}}
{{- else -}}
{{- printf "%s-encryption-key" (include "federation.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "federation.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Fail early on a configuration that cannot work. */}}
{{- define "federation.validate" -}}
{{- if and .Values.database.url .Values.database.existingSecret -}}
{{- fail "set database.url or database.existingSecret, not both" -}}
{{- end -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "the controller needs Postgres: set database.url, or database.existingSecret (a Secret with the URL)" -}}
{{- end -}}
{{- if and .Values.api.token .Values.api.existingSecret -}}
{{- fail "set api.token or api.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.tlsSecret) -}}
{{- fail "webhook.enabled needs webhook.tlsSecret: apiservers call webhooks over HTTPS only" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (not (or .Values.webhook.caBundle .Values.webhook.certManagerCertificate)) -}}
{{- fail "webhook.enabled needs webhook.caBundle or webhook.certManagerCertificate (who vouches for the pair)" -}}
{{- end -}}
{{- if and .Values.clustersFile.kubeconfigsSecret (not .Values.clustersFile.content) -}}
{{- fail "clustersFile.kubeconfigsSecret is set but clustersFile.content is empty" -}}
{{- end -}}
{{- end -}}
