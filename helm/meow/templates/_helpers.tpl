{{/* Names and labels. */}}
{{- define "meow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meow.fullname" -}}
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

{{- define "meow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "meow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meow
{{- end }}

{{/* Names of objects other templates refer to. */}}
{{- define "meow.serviceAccountName" -}}
{{ include "meow.fullname" . }}-control-plane
{{- end }}

{{- define "meow.adminSecretName" -}}
{{ .Values.adminToken.existingSecret | default (printf "%s-admin-token" (include "meow.fullname" .)) }}
{{- end }}

{{- define "meow.storeClaimName" -}}
{{ .Values.store.sqlite.existingClaim | default (printf "%s-store" (include "meow.fullname" .)) }}
{{- end }}

{{- define "meow.metricsSecretName" -}}
{{ .Values.metricsToken.existingSecret | default (printf "%s-metrics-token" (include "meow.fullname" .)) }}
{{- end }}

{{/* The PersistentVolumeClaim of run directories in `artifacts.type: pvc` (one per namespace). */}}
{{- define "meow.artifactsClaimName" -}}
meow-artifacts
{{- end }}

{{/* Where tenants' run directories live: `<root>/<tenant>/runs/<job>`. */}}
{{- define "meow.artifactsRoot" -}}
{{- if eq .Values.artifacts.type "s3" }}
{{- required "artifacts.s3.bucket is required when artifacts.type is s3" .Values.artifacts.s3.bucket | printf "s3://%s" }}
{{- with .Values.artifacts.s3.prefix }}/{{ trimAll "/" . }}{{ end }}
{{- else -}}
{{ include "meow.artifactsMountPath" . }}
{{- end }}
{{- end }}

{{/* Where the control plane and every Ray pod mount the artifact claim in `artifacts.type: pvc`. */}}
{{- define "meow.artifactsMountPath" -}}
/var/lib/meow/artifacts
{{- end }}

{{- define "meow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "meow.rayImage" -}}
{{ .Values.ray.image.repository }}:{{ .Values.ray.image.tag | default (printf "%s-%s" .Chart.AppVersion .Values.ray.image.flavor) }}
{{- end }}

{{/*
`list <overrides> <defaults>`: each key of defaults, taken from overrides where present. Not sprig's
merge, which treats an explicit 0 (`gpus: 0`) as missing and takes the default instead.
*/}}
{{- define "meow.withDefaults" -}}
{{- $over := index . 0 | default dict }}
{{- $out := dict }}
{{- range $key, $value := index . 1 }}
{{- $_ := set $out $key (hasKey $over $key | ternary (get $over $key) $value) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
Tenants with every omitted field filled in, as YAML `{tenants: [...]}`: each
`{name, namespace, quota, limits, clusterQueue}`. The namespace follows the control plane's
`kuberay.namespace_template`, which the chart sets to the same prefix.
*/}}
{{- define "meow.tenants" -}}
{{- $out := list }}
{{- $seen := dict }}
{{- range .Values.tenants }}
{{- $namespace := printf "%s%s" $.Values.tenantNamespacePrefix .name }}
{{- if gt (len $namespace) 63 }}
{{- fail (printf "tenant %q: its namespace %q is longer than 63 characters (tenantNamespacePrefix plus the name)" .name $namespace) }}
{{- end }}
{{- if hasKey $seen .name }}
{{- fail (printf "tenant %q is listed twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $out = append $out (dict
  "name" .name
  "namespace" $namespace
  "quota" (include "meow.withDefaults" (list .quota $.Values.tenantDefaults.quota) | fromYaml)
  "limits" (include "meow.withDefaults" (list .limits $.Values.tenantDefaults.limits) | fromYaml)
  "clusterQueue" (.clusterQueue | default $.Values.kueue.clusterQueue)) }}
{{- end }}
{{- toYaml (dict "tenants" $out) }}
{{- end }}

{{/* One resolved tenant by name (`dict "root" $ "name" "..." "for" "<value>"`); no name: the first. */}}
{{- define "meow.tenant" -}}
{{- $tenants := (include "meow.tenants" .root | fromYaml).tenants }}
{{- if not $tenants }}
{{- fail (printf "%s needs at least one entry in tenants" .for) }}
{{- end }}
{{- $found := index $tenants 0 }}
{{- if .name }}
{{- $found = dict }}
{{- range $tenants }}
{{- if eq .name $.name }}{{ $found = . }}{{ end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "%s names tenant %q, which is not in tenants" .for .name) }}
{{- end }}
{{- end }}
{{- toYaml $found }}
{{- end }}

{{/* Environment of every job (the backend's `job_env`): `ray.env` plus the S3 location settings. */}}
{{- define "meow.jobEnv" -}}
{{- $env := deepCopy .Values.ray.env }}
{{- if eq .Values.artifacts.type "s3" }}
{{- $_ := set $env "AWS_DEFAULT_REGION" .Values.artifacts.s3.region }}
{{- with .Values.artifacts.s3.endpointUrl }}
{{- $_ := set $env "AWS_ENDPOINT_URL" . }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
The control plane's settings (meow_platform.settings.Settings) as `MEOW_PLATFORM_*` environment
variables, one per key (nested keys joined by `__`). Secrets are not here: the Deployment adds them.
`kuberay.*` is every input of a RayJob besides the job itself; templates/example-job.yaml reads the
same values through "meow.kuberaySettings" below.
*/}}
{{- define "meow.platformEnv" -}}
{{- $v := .Values }}
{{- $q := $v.jobQuota }}
{{- $env := dict
  "MEOW_PLATFORM_HOST" "0.0.0.0"
  "MEOW_PLATFORM_PORT" $v.controlPlane.port
  "MEOW_PLATFORM_DATA_DIR" "/var/lib/meow"
  "MEOW_PLATFORM_BACKEND" "kuberay"
  "MEOW_PLATFORM_ARTIFACT_ROOT" (include "meow.artifactsRoot" .)
  "MEOW_PLATFORM_JOB_ENV" (include "meow.jobEnv" . | fromYaml | toJson)
  "MEOW_PLATFORM_POLL_INTERVAL_S" $v.controlPlane.pollIntervalSeconds
  "MEOW_PLATFORM_DEFAULT_QUOTA__MAX_CONCURRENT_JOBS" $q.maxConcurrentJobs
  "MEOW_PLATFORM_DEFAULT_QUOTA__MAX_QUEUED_JOBS" $q.maxQueuedJobs
  "MEOW_PLATFORM_DEFAULT_QUOTA__MAX_WORKERS_PER_JOB" $q.maxWorkersPerJob
  "MEOW_PLATFORM_DEFAULT_QUOTA__MAX_CPUS_PER_JOB" $q.maxCpusPerJob
  "MEOW_PLATFORM_DEFAULT_QUOTA__MAX_GPUS_PER_JOB" $q.maxGpusPerJob
  "MEOW_PLATFORM_DEFAULT_QUOTA__MAX_MEMORY_PER_JOB" $q.maxMemoryPerJob
  "MEOW_PLATFORM_DEFAULT_QUOTA__OVER_QUOTA" $q.overQuota
  "MEOW_PLATFORM_DEFAULT_QUOTA__REQUESTS_PER_MINUTE" $q.requestsPerMinute }}
{{- range $key, $value := include "meow.kuberaySettings" . | fromYaml }}
{{- $_ := set $env (printf "MEOW_PLATFORM_KUBERAY__%s" (upper $key)) $value }}
{{- end }}
{{- range $key, $value := $env }}
{{ $key }}: {{ kindIs "slice" $value | ternary (toJson $value) (toString $value) | quote }}
{{- end }}
{{- end }}

{{/* meow_platform.settings.KubeRaySettings, by its field names (only those the chart sets). */}}
{{- define "meow.kuberaySettings" -}}
{{- $v := .Values }}
image: {{ include "meow.rayImage" . }}
image_pull_policy: {{ $v.image.pullPolicy }}
ray_version: {{ $v.ray.version | quote }}
namespace_template: {{ printf "%s{tenant}" $v.tenantNamespacePrefix | quote }}
ttl_seconds_after_finished: {{ $v.rayJob.ttlSecondsAfterFinished }}
active_deadline_seconds: {{ $v.rayJob.activeDeadlineSeconds }}
backoff_limit: {{ $v.rayJob.backoffLimit }}
head_cpu: {{ $v.ray.head.cpu | quote }}
head_memory: {{ $v.ray.head.memory | quote }}
worker_memory: {{ $v.ray.worker.memory | quote }}
{{- if and (eq $v.artifacts.type "s3") $v.artifacts.s3.credentialsSecret }}
env_secret: {{ $v.artifacts.s3.credentialsSecret }}
{{- end }}
{{- with $v.imagePullSecrets }}
image_pull_secrets:
  {{- range . }}
  - {{ .name }}
  {{- end }}
{{- end }}
{{- if eq $v.artifacts.type "pvc" }}
artifacts_claim: {{ include "meow.artifactsClaimName" . }}
artifacts_mount_path: {{ include "meow.artifactsMountPath" . }}
artifacts_fs_group: {{ $v.ray.runAsGroup }}
{{- end }}
{{- if $v.kueue.enabled }}
queue_name: {{ $v.kueue.localQueueName }}
{{- end }}
{{- end }}

{{/* Pod and container security settings of the control plane. */}}
{{- define "meow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsUser }}
fsGroup: {{ .runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Ray containers: what the kuberay backend sets (meow_platform.backends.kuberay.RESTRICTED). */}}
{{- define "meow.restrictedSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* NetworkPolicy ports: all TCP ports except Ray's dashboard (8265) and client (10001). */}}
{{- define "meow.portsExceptRayControl" -}}
- protocol: TCP
  port: 1
  endPort: 8264
- protocol: TCP
  port: 8266
  endPort: 10000
- protocol: TCP
  port: 10002
  endPort: 65535
{{- end }}

{{/*
KubeRay's submitter pods of RayJobs (K8sJobMode), by the labels of the `submitterPodTemplate`
that the chart and the backend set (meow.dev/role): nothing here depends on the labels a given
KubeRay version puts on them.
*/}}
{{- define "meow.submitterSelector" -}}
matchLabels:
  meow.dev/role: job-submitter
{{- end }}

{{/* An egress rule's `to` peers from ipBlocks (`{cidr, except}`), refusing a block that would open the metadata endpoint. */}}
{{- define "meow.ipBlockPeers" -}}
{{- range .blocks }}
{{- if and (hasPrefix "0.0.0.0/" .cidr) (not (or (has "169.254.0.0/16" (.except | default list)) (has "169.254.169.254/32" (.except | default list)))) }}
{{- fail (printf "%s: the ipBlock %s holds the cloud metadata endpoint 169.254.169.254; add 169.254.0.0/16 to its except" $.for .cidr) }}
{{- end }}
- ipBlock:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}
