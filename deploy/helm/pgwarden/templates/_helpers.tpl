{{/* Names and labels shared by every object of the chart. */}}

{{- define "pgwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pgwarden.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pgwarden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The pods' identity: Services, the PDB and the NetworkPolicy select these. */}}
{{- define "pgwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pgwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pgwarden.labels" -}}
helm.sh/chart: {{ include "pgwarden.chart" . }}
{{ include "pgwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: pgwarden
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pgwarden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pgwarden.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the gateway reads: an existing one, or the chart's. */}}
{{- define "pgwarden.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else -}}
{{- include "pgwarden.fullname" . -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the chart writes the Secret: no existingSecret is named and at
least one secret value is set. Otherwise the pods read the Secret named by
pgwarden.secretName, which the operator creates (kubectl create secret ...).
*/}}
{{- define "pgwarden.createSecret" -}}
{{- $s := .Values.secret -}}
{{- if and (not $s.existingSecret) (or $s.storeDsn $s.adminDsn $s.maskHmacKey $s.vaultToken $s.tlsCrt $s.tlsKey) -}}
true
{{- end -}}
{{- end -}}

{{- define "pgwarden.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The configuration: values.config with the keys the chart owns set to what
the pod provides (listen addresses, TLS files, the data volume, the Secret's
store DSN, the pod's name and address).
*/}}
{{- define "pgwarden.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $tls := dict "self_signed" .Values.tls.selfSigned -}}
{{- if not .Values.tls.selfSigned -}}
{{- $_ := set $tls "cert_file" "/etc/pgwarden/tls/tls.crt" -}}
{{- $_ := set $tls "key_file" "/etc/pgwarden/tls/tls.key" -}}
{{- end -}}
{{- $owned := dict
  "listen" (printf "0.0.0.0:%v" .Values.ports.postgres)
  "admin" (dict "listen" (printf "0.0.0.0:%v" .Values.ports.admin))
  "tls" $tls
  "store" (dict "dir" "/var/lib/pgwarden/data" "dsn" "${PGWARDEN_STORE_DSN}")
  "cluster" (dict "gateway_id" "${POD_NAME}" "advertise" (printf (ternary "[${POD_IP}]:%v" "${POD_IP}:%v" .Values.podIPv6) .Values.ports.postgres))
-}}
{{- toYaml (mergeOverwrite $cfg $owned) -}}
{{- end -}}
