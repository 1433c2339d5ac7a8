{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "dexec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource: the release name, or <release>-dexec. */}}
{{- define "dexec.fullname" -}}
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

{{- define "dexec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dexec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dexec.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "dexec.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dexec
{{- end }}

{{/* Labels of one service's objects; call with (dict "root" $ "component" "api"). */}}
{{- define "dexec.componentLabels" -}}
{{ include "dexec.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dexec.componentSelectorLabels" -}}
{{ include "dexec.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dexec.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dexec.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The four services -------------------------------------------------------------------------
What the code fixes rather than the operator: the console script, the one port each service
listens on and the settings that move it off 127.0.0.1. `public`: clients talk to it (HTTP or
WebSocket), so it has /healthz and /readyz and checks API keys; the others have only their
Prometheus endpoint. `database`: it uses Postgres, so it gets the URL and runs the migrations
before it starts. `signsWebhooks`: it sends the webhooks, so it gets their signing key. */}}
{{- define "dexec.components" -}}
api:
  command: dexec-api
  port: 8000
  portName: http
  hostEnv: DEXEC_API_HOST
  portEnv: DEXEC_API_PORT
  public: true
  database: true
  signsWebhooks: false
notifier:
  command: dexec-notifier
  port: 8001
  portName: http
  hostEnv: DEXEC_NOTIFIER_HOST
  portEnv: DEXEC_NOTIFIER_PORT
  public: true
  database: true
  signsWebhooks: true
router:
  command: dexec-router
  port: 9101
  portName: metrics
  hostEnv: DEXEC_ROUTER_METRICS_HOST
  portEnv: DEXEC_ROUTER_METRICS_PORT
  public: false
  database: false
  signsWebhooks: false
executor:
  command: dexec-executor
  port: 9102
  portName: metrics
  hostEnv: DEXEC_EXECUTOR_METRICS_HOST
  portEnv: DEXEC_EXECUTOR_METRICS_PORT
  public: false
  database: false
  signsWebhooks: false
{{- end }}

{{/* A service's image; call with (dict "root" $ "component" "api"). */}}
{{- define "dexec.image" -}}
{{- $image := .root.Values.image }}
{{- $repository := (index .root.Values .component).image.repository }}
{{- $tag := default .root.Chart.AppVersion $image.tag }}
{{- if $image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" $image.registry) $repository $tag }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* Connections ------------------------------------------------------------------------------ */}}

{{/* The NATS chart's service is named like its fullname: <release>-nats unless the release
name already contains "nats", or nats.fullnameOverride. */}}
{{- define "dexec.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- $host := "" }}
{{- if .Values.nats.fullnameOverride }}
{{- $host = .Values.nats.fullnameOverride }}
{{- else if contains "nats" .Release.Name }}
{{- $host = .Release.Name }}
{{- else }}
{{- $host = printf "%s-nats" .Release.Name }}
{{- end }}
{{- printf "nats://%s:4222" ($host | trunc 63 | trimSuffix "-") }}
{{- else }}
{{- required "externalNats.url is required when nats.enabled is false" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/* JetStream cannot place more stream replicas than there are servers. */}}
{{- define "dexec.checkStreamReplicas" -}}
{{- if .Values.nats.enabled }}
{{- $servers := 1 }}
{{- if .Values.nats.config.cluster.enabled }}
{{- $servers = int .Values.nats.config.cluster.replicas }}
{{- end }}
{{- $replicas := int (default "1" .Values.config.DEXEC_STREAM_REPLICAS) }}
{{- if gt $replicas $servers }}
{{- fail (printf "config.DEXEC_STREAM_REPLICAS (%d) exceeds the NATS cluster size (%d)" $replicas $servers) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding DEXEC_DATABASE_URL, and its key. */}}
{{- define "dexec.databaseSecretName" -}}
{{- if and .Values.database.existingSecret (not .Values.postgresql.enabled) }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "dexec.fullname" .) }}
{{- end }}
{{- end }}

{{- define "dexec.databaseSecretKey" -}}
{{- if and .Values.database.existingSecret (not .Values.postgresql.enabled) }}
{{- .Values.database.existingSecretKey }}
{{- else -}}
DEXEC_DATABASE_URL
{{- end }}
{{- end }}

{{- define "dexec.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "dexec.fullname" .)) .Values.apiKeys.existingSecret }}
{{- end }}

{{/* The Secret holding the notifier's webhook key, and its key. */}}
{{- define "dexec.webhooksSecretName" -}}
{{- default (printf "%s-webhooks" (include "dexec.fullname" .)) .Values.webhooks.existingSecret }}
{{- end }}

{{- define "dexec.webhooksSecretKey" -}}
{{- if .Values.webhooks.existingSecret }}
{{- .Values.webhooks.existingSecretKey }}
{{- else -}}
DEXEC_WEBHOOK_SECRET
{{- end }}
{{- end }}

{{/* Where clients open WebSockets (the links in API responses): the public host when there is
one, else the notifier's in-cluster Service. */}}
{{- define "dexec.publicWsUrl" -}}
{{- if .Values.publicWsUrl }}
{{- .Values.publicWsUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.host }}
{{- printf "%s://%s" (ternary "wss" "ws" .Values.ingress.tls.enabled) .Values.ingress.host }}
{{- else if and .Values.httpRoute.enabled .Values.httpRoute.hostnames }}
{{- printf "wss://%s" (first .Values.httpRoute.hostnames) }}
{{- else }}
{{- printf "ws://%s-notifier:%v" (include "dexec.fullname" .) .Values.notifier.service.port }}
{{- end }}
{{- end }}

{{/* Pods ------------------------------------------------------------------------------------- */}}

{{/* Environment every container of a service gets besides the settings ConfigMap: the
database URL and API keys from their Secrets where the service uses them. */}}
{{- define "dexec.secretEnv" -}}
{{- if .spec.database }}
- name: DEXEC_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "dexec.databaseSecretName" .root }}
      key: {{ include "dexec.databaseSecretKey" .root }}
{{- end }}
{{- if and .spec.public .root.Values.apiKeys.enabled }}
- name: DEXEC_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "dexec.apiKeysSecretName" .root }}
      key: DEXEC_API_KEYS
{{- end }}
{{- end }}

{{/* The webhook signing key, for the main container of the service that sends webhooks (its
migrations do not need it). */}}
{{- define "dexec.webhooksSecretEnv" -}}
- name: DEXEC_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "dexec.webhooksSecretName" . }}
      key: {{ include "dexec.webhooksSecretKey" . }}
{{- end }}

{{/* Probes: api and notifier have /healthz (alive) and /readyz (NATS answers; Postgres is
reported but not required: a failover must not take every replica out of service);
router and executor have only their metrics endpoint, served once the worker is connected to
NATS with its consumer running, and then while the process lives.
Start-up allows 60 s (migrations run in an init container, before this). */}}
{{- define "dexec.probes" -}}
{{- $port := .spec.portName }}
{{- $alive := ternary "/healthz" "/metrics" .spec.public }}
{{- $ready := ternary "/readyz" "/metrics" .spec.public }}
startupProbe:
  httpGet: {path: {{ $alive }}, port: {{ $port }}}
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 30
readinessProbe:
  httpGet: {path: {{ $ready }}, port: {{ $port }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
livenessProbe:
  httpGet: {path: {{ $alive }}, port: {{ $port }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/*
A DEXEC_* value as the string its variable holds. A values file's numbers reach templates as
floats, and a float of a million or more prints as 1.6777216e+07, which no setting parses:
a whole number is printed as one.
*/}}
{{- define "dexec.envValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- . | toString | quote -}}
{{- end -}}
{{- end -}}
