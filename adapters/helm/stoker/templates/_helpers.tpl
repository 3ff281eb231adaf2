{{- define "stoker.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "stoker.labels" -}}
app.kubernetes.io/name: stoker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "stoker.security" -}}
securityContext:
  runAsNonRoot: true
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  seccompProfile: {type: RuntimeDefault}
  capabilities: {drop: [ALL]}
{{- end -}}
{{- define "stoker.selfSigned" -}}
{{- if and (not .Values.webhook.certManager.enabled) (not .Values.webhook.tls.secretName) -}}true{{- end -}}
{{- end -}}
{{- define "stoker.tlsSecret" -}}
{{- if .Values.webhook.certManager.enabled -}}{{ include "stoker.name" . }}-webhook-tls{{- else -}}{{ .Values.webhook.tls.secretName }}{{- end -}}
{{- end -}}
