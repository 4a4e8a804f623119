{{/*
Ray clusters of tenants: the RayJob of one unlearning run and the probing RayService's cluster.
Everything comes from the platform configuration's `backend.kuberay` block (`.kuberay`), the
resolved tenant (`.tenant`) and the artifacts settings (`.artifacts`), so that the control plane's
kuberay backend, reading the same block from platform.yaml, builds the very same objects.
*/}}

{{/* Environment of every Ray container. */}}
{{- define "meow.rayEnv" -}}
- name: MEOW_TENANT
  value: {{ .tenant.name }}
{{- if eq .artifacts.type "s3" }}
- name: AWS_DEFAULT_REGION
  value: {{ .artifacts.region | quote }}
{{- with .artifacts.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := .kuberay.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* One Ray container (`.name`, `.resources`, `.ports`, `.mounts` besides the common inputs). */}}
{{- define "meow.rayContainer" -}}
name: {{ .name }}
image: {{ .kuberay.image }}
imagePullPolicy: {{ .kuberay.imagePullPolicy }}
ports:
  {{- toYaml .ports | nindent 2 }}
env:
  {{- include "meow.rayEnv" . | nindent 2 }}
{{- if and (eq .artifacts.type "s3") .tenant.s3CredentialsSecret }}
envFrom:
  - secretRef:
      name: {{ .tenant.s3CredentialsSecret }}
{{- end }}
resources:
  {{- toYaml .resources | nindent 2 }}
securityContext:
  {{- include "meow.containerSecurityContext" . | nindent 2 }}
{{- if .mounts }}
volumeMounts:
  {{- toYaml .mounts | nindent 2 }}
{{- end }}
{{- end }}

{{/* The pod template of a Ray group (`.container` is the rendered container, `.volumes` a list). */}}
{{- define "meow.rayPod" -}}
metadata:
  labels:
    app.kubernetes.io/part-of: meow
    meow.dev/tenant: {{ .tenant.name }}
spec:
  {{- if not .autoscaling }}
  # Ray pods never talk to the Kubernetes API (only the autoscaler does).
  automountServiceAccountToken: false
  {{- end }}
  securityContext:
    {{- include "meow.podSecurityContext" .kuberay | nindent 4 }}
  {{- with .kuberay.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - {{ .container | nindent 6 | trim }}
  {{- with .volumes }}
  volumes:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
A RayCluster spec. Inputs: kuberay, tenant, artifacts, workers (dict replicas/min/max), serve (bool:
add Serve's port), autoscaling (bool), specConfigMap (name, or empty: the spec mounted on the head).
*/}}
{{- define "meow.rayClusterSpec" -}}
{{- $mounts := list }}
{{- $volumes := list }}
{{- if .specConfigMap }}
{{- $mounts = append $mounts (dict "name" "spec" "mountPath" "/etc/meow/spec" "readOnly" true) }}
{{- $volumes = append $volumes (dict "name" "spec" "configMap" (dict "name" .specConfigMap)) }}
{{- end }}
{{- $artifactMounts := list }}
{{- $artifactVolumes := list }}
{{- if eq .artifacts.type "pvc" }}
{{- $artifactMounts = list (dict "name" "artifacts" "mountPath" .artifacts.root) }}
{{- $artifactVolumes = list (dict "name" "artifacts" "persistentVolumeClaim" (dict "claimName" .artifacts.claimName)) }}
{{- end }}
{{- $headPorts := list (dict "name" "gcs-server" "containerPort" 6379) (dict "name" "dashboard" "containerPort" 8265) (dict "name" "client" "containerPort" 10001) (dict "name" "metrics" "containerPort" 8080) }}
{{- $workerPorts := list (dict "name" "metrics" "containerPort" 8080) }}
{{- if .serve }}
{{- $headPorts = append $headPorts (dict "name" "serve" "containerPort" 8000) }}
{{- $workerPorts = append $workerPorts (dict "name" "serve" "containerPort" 8000) }}
{{- end }}
{{- $head := include "meow.rayContainer" (merge (dict "name" "ray-head" "resources" .kuberay.head.resources "ports" $headPorts "mounts" (concat $mounts $artifactMounts)) .) }}
{{- $worker := include "meow.rayContainer" (merge (dict "name" "ray-worker" "resources" .kuberay.worker.resources "ports" $workerPorts "mounts" $artifactMounts) .) -}}
rayVersion: {{ .kuberay.rayVersion | quote }}
authOptions:
  mode: {{ .kuberay.authMode }}
{{- if .autoscaling }}
enableInTreeAutoscaling: true
autoscalerOptions:
  upscalingMode: Default
  idleTimeoutSeconds: 300
  resources:
    requests: {cpu: 200m, memory: 256Mi}
    limits: {cpu: 500m, memory: 512Mi}
  securityContext:
    {{- include "meow.containerSecurityContext" . | nindent 4 }}
{{- end }}
headGroupSpec:
  # Reachable inside the cluster only; the NetworkPolicy narrows that further.
  serviceType: ClusterIP
  rayStartParams:
    dashboard-host: 0.0.0.0
    # The driver runs here; tasks and actors go to the workers, which are sized for them.
    num-cpus: "0"
    metrics-export-port: "8080"
  template:
    {{- include "meow.rayPod" (merge (dict "container" $head "volumes" (concat $volumes $artifactVolumes)) .) | nindent 4 }}
workerGroupSpecs:
  - groupName: workers
    replicas: {{ .workers.replicas }}
    minReplicas: {{ .workers.min }}
    maxReplicas: {{ .workers.max }}
    rayStartParams:
      metrics-export-port: "8080"
    template:
      {{- include "meow.rayPod" (merge (dict "container" $worker "volumes" $artifactVolumes "nodeSelector" .kuberay.worker.nodeSelector "tolerations" .kuberay.worker.tolerations) .) | nindent 6 }}
{{- end }}

{{/* The spec ConfigMap of one job: `.name`, `.tenant`, `.spec` (YAML text). */}}
{{- define "meow.specConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .name }}-spec
  namespace: {{ .tenant.namespace }}
  labels:
    app.kubernetes.io/part-of: meow
    meow.dev/tenant: {{ .tenant.name }}
    meow.dev/job: {{ .name }}
data:
  spec.yaml: |
    {{- .spec | nindent 4 }}
{{- end }}

{{/*
The RayJob of one unlearning run: `.name`, `.workers`, `.kuberay`, `.tenant`, `.artifacts`. No Helm
labels: the kuberay backend creates the same object for a submission.
*/}}
{{- define "meow.rayJob" -}}
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: {{ .name }}
  namespace: {{ .tenant.namespace }}
  labels:
    app.kubernetes.io/part-of: meow
    app.kubernetes.io/component: unlearning-job
    meow.dev/tenant: {{ .tenant.name }}
    meow.dev/job: {{ .name }}
    {{- with .kuberay.kueueQueue }}
    # Kueue admits the job by flipping spec.suspend; never set it here.
    kueue.x-k8s.io/queue-name: {{ . }}
    {{- end }}
spec:
  entrypoint: meow unlearn /etc/meow/spec/spec.yaml --run-dir {{ .artifacts.root }}/{{ .tenant.name }}/runs/{{ .name }}
  submissionMode: {{ .kuberay.submissionMode }}
  shutdownAfterJobFinishes: {{ .kuberay.shutdownAfterJobFinishes }}
  ttlSecondsAfterFinished: {{ .kuberay.ttlSecondsAfterFinished }}
  activeDeadlineSeconds: {{ .kuberay.activeDeadlineSeconds }}
  backoffLimit: {{ .kuberay.backoffLimit }}
  rayClusterSpec:
    {{- include "meow.rayClusterSpec" (merge (dict "workers" (dict "replicas" .workers "min" .workers "max" .workers) "serve" false "autoscaling" false "specConfigMap" (printf "%s-spec" .name)) .) | nindent 4 }}
{{- end }}
