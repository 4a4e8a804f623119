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
/var/lib/meow/artifacts
{{- end }}
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
Tenants with every omitted field filled from tenantDefaults, as YAML `{tenants: [...]}`:
each `{name, namespace, quota, limits, jobs, clusterQueue, s3CredentialsSecret}`.
*/}}
{{- define "meow.tenants" -}}
{{- $out := list }}
{{- $seen := dict }}
{{- range .Values.tenants }}
{{- if hasKey $seen .name }}
{{- fail (printf "tenant %q is listed twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $t := dict
  "name" .name
  "namespace" (.namespace | default (printf "%s%s" $.Values.tenantNamespacePrefix .name))
  "quota" (include "meow.withDefaults" (list .quota $.Values.tenantDefaults.quota) | fromYaml)
  "limits" (include "meow.withDefaults" (list .limits $.Values.tenantDefaults.limits) | fromYaml)
  "jobs" (include "meow.withDefaults" (list .jobs $.Values.tenantDefaults.jobs) | fromYaml)
  "clusterQueue" (.clusterQueue | default $.Values.kueue.clusterQueue)
  "s3CredentialsSecret" (.s3CredentialsSecret | default $.Values.artifacts.s3.credentialsSecret) }}
{{- $out = append $out $t }}
{{- end }}
{{- toYaml (dict "tenants" $out) }}
{{- end }}

{{/* One resolved tenant by name (`dict "root" $ "name" "..."`); an empty name means the first. */}}
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

{{/*
The platform configuration (platform.yaml in the ConfigMap). The `backend.kuberay` block is every
input of a RayJob besides the tenant, the job name, its worker count and its spec: the control
plane's kuberay backend builds RayJobs from it, and so does this chart (templates/example-job.yaml).
*/}}
{{- define "meow.platformConfig" -}}
{{- $v := .Values }}
{{- $artifacts := dict "type" $v.artifacts.type "root" (include "meow.artifactsRoot" .) }}
{{- if eq $v.artifacts.type "s3" }}
{{- $_ := set $artifacts "endpointUrl" $v.artifacts.s3.endpointUrl }}
{{- $_ := set $artifacts "region" $v.artifacts.s3.region }}
{{- else }}
{{- $_ := set $artifacts "claimName" (include "meow.artifactsClaimName" .) }}
{{- end }}
{{- $kuberay := dict
  "image" (include "meow.rayImage" .)
  "imagePullPolicy" $v.image.pullPolicy
  "imagePullSecrets" $v.imagePullSecrets
  "rayVersion" $v.ray.version
  "authMode" $v.ray.authMode
  "runAsUser" $v.runAsUser
  "submissionMode" $v.rayJob.submissionMode
  "shutdownAfterJobFinishes" $v.rayJob.shutdownAfterJobFinishes
  "ttlSecondsAfterFinished" $v.rayJob.ttlSecondsAfterFinished
  "activeDeadlineSeconds" $v.rayJob.activeDeadlineSeconds
  "backoffLimit" $v.rayJob.backoffLimit
  "head" (dict "resources" $v.ray.head.resources)
  "worker" (pick $v.ray.worker "resources" "nodeSelector" "tolerations")
  "env" $v.ray.env
  "kueueQueue" (ternary $v.kueue.localQueueName "" $v.kueue.enabled) }}
{{- $config := dict
  "api" (dict "port" $v.controlPlane.port "logLevel" $v.controlPlane.logLevel)
  "store" (dict "type" $v.store.type)
  "artifacts" $artifacts
  "backend" (dict "type" "kuberay" "kuberay" $kuberay)
  "tenants" (include "meow.tenants" . | fromYaml).tenants }}
{{- toYaml $config }}
{{- end }}

{{/* Pod and container security settings shared by every pod the chart (or the backend) creates. */}}
{{- define "meow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsUser }}
fsGroup: {{ .runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "meow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
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

{{/* Where the KubeRay operator runs: this release's namespace when the chart installs it. */}}
{{- define "meow.operatorNamespace" -}}
{{- if index .Values "kuberay-operator" "enabled" }}
{{- .Release.Namespace }}
{{- else }}
{{- .Values.networkPolicy.kuberayOperatorNamespace }}
{{- end }}
{{- end }}
