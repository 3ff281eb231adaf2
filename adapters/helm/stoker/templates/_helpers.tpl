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
{{- /* An image's full name from image.registry and image.<key>.repository and .tag. */ -}}
{{- define "stoker.image" -}}
{{- $image := index .root.Values.image .key -}}
{{- with .root.Values.image.registry }}{{ . }}/{{ end }}{{ $image.repository }}:{{ $image.tag }}
{{- end -}}
{{- /* The pod spec's imagePullSecrets (names or {name: …}) and the component's scheduling. */ -}}
{{- define "stoker.podPlacement" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
  {{- end }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- /* A PodDisruptionBudget for one component's Deployment. */ -}}
{{- define "stoker.pdb" -}}
{{- $values := index .root.Values .component -}}
{{- if $values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "stoker.name" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels: {{- include "stoker.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  maxUnavailable: {{ $values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels: {app.kubernetes.io/instance: {{ .root.Release.Name }}, app.kubernetes.io/component: {{ .component }}}
{{- end }}
{{- end -}}
