{{/* Chart name, truncated to a DNS label. */}}
{{- define "k8smon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; components append -agent, -aggregator (so 50 chars). */}}
{{- define "k8smon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The namespace of every namespaced object: namespaceOverride, else the release's. */}}
{{- define "k8smon.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k8smon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "k8smon.labels" -}}
helm.sh/chart: {{ include "k8smon.chart" . }}
app.kubernetes.io/name: {{ include "k8smon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k8s-llm-monitor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of a component: (dict "ctx" $ "component" "agent"). */}}
{{- define "k8smon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8smon.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "k8smon.componentLabels" -}}
{{ include "k8smon.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "k8smon.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (printf "%s-agent" (include "k8smon.fullname" .)) .Values.agent.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "k8smon.aggregator.serviceAccountName" -}}
{{- if .Values.aggregator.serviceAccount.create }}
{{- default (printf "%s-aggregator" (include "k8smon.fullname" .)) .Values.aggregator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.aggregator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: (dict "ctx" $ "image" .Values.agent.image). With
global.imageRegistry set (a mirror), it replaces the registry of the
repository: ghcr.io/k8s-llm-monitor/agent becomes
<global.imageRegistry>/k8s-llm-monitor/agent. A first path element is a
registry when it has a dot or a colon or is localhost, as Docker reads it.
*/}}
{{- define "k8smon.image" -}}
{{- $repo := .image.repository }}
{{- with (.ctx.Values.global | default dict).imageRegistry }}
{{- $parts := splitList "/" $repo }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repo = join "/" (rest $parts) }}
{{- end }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/*
A duration value in seconds, read as the binaries read it
(config.ParseSeconds): a number of seconds, a string of one ("15"), or a Go
duration ("90s", "1h30m", "500ms"); unset is 0. Prints a number for float64.
*/}}
{{- define "k8smon.seconds" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}
{{- $s := trim $v }}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $s }}
{{- $s | float64 }}
{{- else }}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" $s -1 }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . "" }}
{{- $total = addf $total (mulf $num (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}
{{- else if $v }}
{{- $v | float64 }}
{{- else }}0
{{- end }}
{{- end }}

{{/*
The rules both binaries check at start (shared/config/validate.go), checked
when rendering so that a bad value fails the install, naming the value to
change, instead of crash-looping every pod.
*/}}
{{- define "k8smon.validateConfig" -}}
{{- $m := .Values.metrics }}
{{- $interval := include "k8smon.seconds" $m.collect_interval | float64 }}
{{- if or (lt $interval 1.0) (gt $interval 3600.0) }}
{{- fail (printf "metrics.collect_interval=%v: both binaries accept 1s to 1h (1 to 3600 seconds); set metrics.collect_interval within that range" $m.collect_interval) }}
{{- end }}
{{- $retention := include "k8smon.seconds" $m.cache_retention | float64 }}
{{- if gt $retention 604800.0 }}
{{- fail (printf "metrics.cache_retention=%v: at most 7 days (604800 seconds, 168h); lower metrics.cache_retention" $m.cache_retention) }}
{{- end }}
{{- $timeout := include "k8smon.seconds" .Values.agent.config.source_timeout | float64 }}
{{- if gt $timeout $interval }}
{{- fail (printf "agent.config.source_timeout=%v is longer than metrics.collect_interval=%v: the agents refuse a source deadline beyond one interval; lower agent.config.source_timeout (0 picks 5s, or half the interval if that is less) or raise metrics.collect_interval" .Values.agent.config.source_timeout $m.collect_interval) }}
{{- end }}
{{- with .Values.aggregator.config.events_retention }}
{{- if lt (include "k8smon.seconds" . | float64) 60.0 }}
{{- fail (printf "aggregator.config.events_retention=%v: at least 1m (60 seconds); raise aggregator.config.events_retention" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the NATS credentials. */}}
{{- define "k8smon.natsSecretName" -}}
{{- default (printf "%s-nats" (include "k8smon.fullname" .)) .Values.nats.auth.existingSecret }}
{{- end }}

{{/* "true" when NATS identities come from Kubernetes (nats.auth.type kubernetes). */}}
{{- define "k8smon.natsKubernetes" -}}
{{- if and .Values.nats.auth.enabled (eq .Values.nats.auth.type "kubernetes") }}true{{ end }}
{{- end }}

{{/* The path prefix of the aggregator's access reviews: one per release. */}}
{{- define "k8smon.authzPrefix" -}}/{{ include "k8smon.fullname" . }}{{- end }}

{{/* Where the agents' projected NATS token is mounted. */}}
{{- define "k8smon.natsTokenDir" -}}/var/run/secrets/k8s-llm-monitor/nats{{- end }}

{{- define "k8smon.embeddedNATS" -}}
{{- if not .Values.nats.url }}true{{ end }}
{{- end }}

{{/* The aggregator's Service, which also carries the embedded NATS port. */}}
{{- define "k8smon.aggregator.serviceHost" -}}
{{- printf "%s-aggregator.%s.svc.%s" (include "k8smon.fullname" .) (include "k8smon.namespace" .) .Values.clusterDomain }}
{{- end }}

{{/* The URL agents connect to: the embedded server's Service, or nats.url. */}}
{{- define "k8smon.agent.natsURL" -}}
{{- if .Values.nats.url }}
{{- .Values.nats.url }}
{{- else }}
{{- printf "%s://%s:%d" (ternary "tls" "nats" .Values.nats.tls.enabled) (include "k8smon.aggregator.serviceHost" .) (int .Values.nats.port) }}
{{- end }}
{{- end }}

{{/*
Rendering checks that the schema cannot express; each failure names the
values to change.
*/}}
{{- define "k8smon.validate" -}}
{{- include "k8smon.validateConfig" . }}
{{- $embedded := not .Values.nats.url }}
{{- if and $embedded (gt (int .Values.nats.jetstream.replicas) 1) }}
{{- fail (printf "nats.jetstream.replicas=%d needs a NATS cluster: the embedded server is a single server. Set nats.url to a NATS cluster with JetStream (docs/install.md), or leave replicas at 0." (int .Values.nats.jetstream.replicas)) }}
{{- end }}
{{- if and $embedded (gt (int .Values.aggregator.replicaCount) 1) }}
{{- fail (printf "aggregator.replicaCount=%d needs an external NATS: set nats.url (see examples/external-nats.yaml). With the embedded NATS server every replica would run its own server and each agent would reach only one of them." (int .Values.aggregator.replicaCount)) }}
{{- end }}
{{- if .Values.nats.auth.enabled }}
{{- if and (not $embedded) (eq .Values.nats.auth.type "kubernetes") (not .Values.nats.auth.existingSecret) }}
{{- fail "nats.auth.type=kubernetes with an external NATS (nats.url): the aggregator serves the server's auth callout; set nats.auth.existingSecret to a Secret with the aggregator's auth user (nats.auth.userKey, nats.auth.passwordKey) and the issuer account seed (nats.auth.kubernetes.calloutSeedKey) (see examples/external-nats-callout.yaml and docs/security.md)" }}
{{- end }}
{{- if and $embedded (eq .Values.nats.auth.type "creds") }}
{{- fail "nats.auth.type=creds needs an operator-configured NATS server: use token or userPassword with the embedded server, or set nats.url" }}
{{- end }}
{{- if and (not .Values.nats.auth.existingSecret) (eq .Values.nats.auth.type "creds") }}
{{- fail "nats.auth.type=creds reads the credentials file from a Secret: set nats.auth.existingSecret (and nats.auth.credsKey)" }}
{{- end }}
{{- if and (not $embedded) (not .Values.nats.auth.existingSecret) }}
{{- if and (eq .Values.nats.auth.type "token") (not .Values.nats.auth.token) }}
{{- fail "an external NATS (nats.url) checks its own credentials: set nats.auth.existingSecret (recommended) or nats.auth.token, or nats.auth.enabled=false if it needs none" }}
{{- end }}
{{- if and (eq .Values.nats.auth.type "userPassword") (not .Values.nats.auth.password) }}
{{- fail "an external NATS (nats.url) checks its own credentials: set nats.auth.existingSecret (recommended) or nats.auth.user and nats.auth.password" }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.nats.tls.enabled $embedded (not .Values.nats.tls.certSecret) }}
{{- fail (printf "nats.tls.enabled with the embedded NATS server needs its certificate: set nats.tls.certSecret to a kubernetes.io/tls Secret whose certificate names %s" (include "k8smon.aggregator.serviceHost" .)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}
{{- fail "serviceMonitor.enabled and podMonitor.enabled: Prometheus would scrape every pod twice; enable one of the two" }}
{{- end }}
{{- if and .Values.agent.gpu.enabled .Values.agent.gpu.nodeSelector (not .Values.agent.gpu.runtimeClassName) (not .Values.agent.gpu.env) }}
{{- fail "agent.gpu.enabled: set agent.gpu.runtimeClassName or agent.gpu.env, or the GPU DaemonSet is the same as the main one" }}
{{- end }}
{{- end }}

{{/*
Environment for the NATS credentials and TLS files: (dict "ctx" $ "component" "agent").
*/}}
{{- define "k8smon.natsEnv" -}}
{{- $v := .ctx.Values.nats }}
{{- $secret := include "k8smon.natsSecretName" .ctx }}
{{- if $v.auth.enabled }}
{{- if eq $v.auth.type "kubernetes" }}
{{- if eq .component "agent" }}
- name: K8SMON_NATS_TOKEN_FILE
  value: {{ include "k8smon.natsTokenDir" .ctx }}/token
{{- else if $v.url }}
# The aggregator answers the external server's auth callout: it connects as
# one of the server's auth_users and signs with the issuer account seed.
- name: K8SMON_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.auth.userKey }}
- name: K8SMON_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.auth.passwordKey }}
- name: K8SMON_NATS_CALLOUT_ISSUER_SEED_FILE
  value: /etc/k8s-llm-monitor/nats-callout/{{ $v.auth.kubernetes.calloutSeedKey }}
{{- end }}
{{- else if eq $v.auth.type "token" }}
- name: K8SMON_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.auth.tokenKey }}
{{- else if eq $v.auth.type "userPassword" }}
- name: K8SMON_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.auth.userKey }}
- name: K8SMON_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.auth.passwordKey }}
{{- else if eq $v.auth.type "creds" }}
- name: K8SMON_NATS_CREDS_FILE
  value: /etc/k8s-llm-monitor/nats-creds/{{ $v.auth.credsKey }}
{{- end }}
{{- end }}
{{- if $v.tls.enabled }}
{{- if $v.tls.caSecret }}
- name: K8SMON_NATS_TLS_CA_FILE
  value: /etc/k8s-llm-monitor/nats-ca/{{ $v.tls.caKey }}
{{- end }}
{{- if and $v.tls.certSecret (or $v.url (eq .component "aggregator")) }}
- name: K8SMON_NATS_TLS_CERT_FILE
  value: /etc/k8s-llm-monitor/nats-tls/tls.crt
- name: K8SMON_NATS_TLS_KEY_FILE
  value: /etc/k8s-llm-monitor/nats-tls/tls.key
{{- end }}
{{- if $v.tls.insecureSkipVerify }}
- name: K8SMON_NATS_TLS_INSECURE_SKIP_VERIFY
  value: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* Volume mounts for the NATS credentials and TLS files. */}}
{{- define "k8smon.natsVolumeMounts" -}}
{{- $v := .ctx.Values.nats }}
{{- if and (include "k8smon.natsKubernetes" .ctx) (eq .component "agent") }}
- name: nats-token
  mountPath: {{ include "k8smon.natsTokenDir" .ctx }}
  readOnly: true
{{- end }}
{{- if and (include "k8smon.natsKubernetes" .ctx) (eq .component "aggregator") $v.url }}
- name: nats-callout
  mountPath: /etc/k8s-llm-monitor/nats-callout
  readOnly: true
{{- end }}
{{- if and $v.auth.enabled (eq $v.auth.type "creds") }}
- name: nats-creds
  mountPath: /etc/k8s-llm-monitor/nats-creds
  readOnly: true
{{- end }}
{{- if $v.tls.enabled }}
{{- if $v.tls.caSecret }}
- name: nats-ca
  mountPath: /etc/k8s-llm-monitor/nats-ca
  readOnly: true
{{- end }}
{{- if and $v.tls.certSecret (or $v.url (eq .component "aggregator")) }}
- name: nats-tls
  mountPath: /etc/k8s-llm-monitor/nats-tls
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes for the NATS credentials and TLS files; only the needed keys. */}}
{{- define "k8smon.natsVolumes" -}}
{{- $v := .ctx.Values.nats }}
{{- if and (include "k8smon.natsKubernetes" .ctx) (eq .component "agent") }}
# The agent's NATS identity: its ServiceAccount token for the product's
# audience, bound to this pod (so to this node), rotated by the kubelet.
- name: nats-token
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          audience: {{ $v.auth.kubernetes.audience }}
          expirationSeconds: {{ int $v.auth.kubernetes.expirationSeconds }}
{{- end }}
{{- if and (include "k8smon.natsKubernetes" .ctx) (eq .component "aggregator") $v.url }}
- name: nats-callout
  secret:
    secretName: {{ include "k8smon.natsSecretName" .ctx }}
    defaultMode: 0440
    items:
      - key: {{ $v.auth.kubernetes.calloutSeedKey }}
        path: {{ $v.auth.kubernetes.calloutSeedKey }}
{{- end }}
{{- if and $v.auth.enabled (eq $v.auth.type "creds") }}
- name: nats-creds
  secret:
    secretName: {{ include "k8smon.natsSecretName" .ctx }}
    defaultMode: 0444
    items:
      - key: {{ $v.auth.credsKey }}
        path: {{ $v.auth.credsKey }}
{{- end }}
{{- if $v.tls.enabled }}
{{- if $v.tls.caSecret }}
- name: nats-ca
  secret:
    secretName: {{ $v.tls.caSecret }}
    defaultMode: 0444
    items:
      - key: {{ $v.tls.caKey }}
        path: {{ $v.tls.caKey }}
{{- end }}
{{- if and $v.tls.certSecret (or $v.url (eq .component "aggregator")) }}
- name: nats-tls
  secret:
    secretName: {{ $v.tls.certSecret }}
    defaultMode: 0444
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end }}

{{/*
A probe of path on port from the values' timings: (dict "probe"
.Values.agent.livenessProbe "path" "/healthz" "port" "metrics" "indent" 10).
Empty when the probe is disabled.
*/}}
{{- define "k8smon.probe" -}}
{{- if .probe.enabled }}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- with omit .probe "enabled" }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where the embedded NATS server keeps its JetStream store (aggregator.data_dir).
*/}}
{{- define "k8smon.aggregator.dataDir" -}}
/var/lib/k8s-llm-monitor/jetstream
{{- end }}
