{{/*
Ray clusters in tenant namespaces. "meow.rayJob" renders exactly what the control plane's kuberay
backend (meow_platform.backends.kuberay.build_rayjob) submits for one job, from the same settings
("meow.kuberaySettings"); tests/deploy compares the two. The probing RayService reuses its pods.
*/}}

{{/*
A Ray pod template: `.container`, `.labels`, `.resources`, `.ports` (a list of {name, containerPort}),
`.settings`, `.tenant` (its name), and optionally `.volumes` (extra pod volumes).
*/}}
{{- define "meow.rayPodTemplate" -}}
metadata:
  labels:
    {{- toYaml .labels | nindent 4 }}
spec:
  # Ray pods never talk to the Kubernetes API.
  automountServiceAccountToken: false
  securityContext:
    {{- include "meow.podSecurity" . | nindent 4 }}
    {{- if .settings.artifacts_claim }}
    fsGroup: {{ .settings.artifacts_fs_group }}
    {{- end }}
  {{- with .settings.image_pull_secrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- if or .settings.artifacts_claim .volumes }}
  volumes:
    {{- with .settings.artifacts_claim }}
    - name: artifacts
      persistentVolumeClaim:
        claimName: {{ . }}
    {{- end }}
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ .settings.image }}
      imagePullPolicy: {{ .settings.image_pull_policy }}
      resources:
        requests:
          {{- toYaml .resources | nindent 10 }}
        limits:
          {{- toYaml .resources | nindent 10 }}
      ports:
        {{- toYaml .ports | nindent 8 }}
      securityContext:
        {{- include "meow.restrictedSecurityContext" . | nindent 8 }}
      {{- with .settings.env_secret }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      {{- if .settings.artifacts_claim }}
      # Every pod: the driver on the head writes status and report, workers write models. Only the
      # tenant's own directory of the claim, at the same path as in the control plane.
      volumeMounts:
        - name: artifacts
          mountPath: {{ printf "%s/%s" .settings.artifacts_mount_path .tenant }}
          subPath: {{ .tenant }}
      {{- end }}
{{- end }}

{{/* Pod-level security of Ray and submitter pods (the backend's POD_SECURITY). */}}
{{- define "meow.podSecurity" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
KubeRay's submitter pod of a RayJob (K8sJobMode), as the backend's _submitter_template: restricted,
labelled meow.dev/role: job-submitter for the NetworkPolicies; KubeRay fills in the command.
*/}}
{{- define "meow.submitterPodTemplate" -}}
metadata:
  labels:
    {{- toYaml (merge (dict "app.kubernetes.io/component" "job-submitter" "meow.dev/role" "job-submitter") .labels) | nindent 4 }}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    {{- include "meow.podSecurity" . | nindent 4 }}
  {{- with .settings.image_pull_secrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  containers:
    - name: ray-job-submitter
      image: {{ .settings.image }}
      imagePullPolicy: {{ .settings.image_pull_policy }}
      resources:
        requests: {cpu: 500m, memory: 512Mi}
        limits: {cpu: 500m, memory: 512Mi}
      securityContext:
        {{- include "meow.restrictedSecurityContext" . | nindent 8 }}
{{- end }}

{{/* Ports of a Ray head, in the backend's order. */}}
{{- define "meow.headPorts" -}}
- {name: gcs-server, containerPort: 6379}
- {name: dashboard, containerPort: 8265}
- {name: client, containerPort: 10001}
- {name: metrics, containerPort: 8080}
{{- end }}

{{/* A CPU count per worker as a quantity: whole CPUs as an integer, else millicores rounded up. */}}
{{- define "meow.cpuQuantity" -}}
{{- if eq (floor .) (float64 .) }}{{ int64 . }}{{ else }}{{ ceil (mulf . 1000) | int64 }}m{{ end }}
{{- end }}

{{/*
The RayJob of one job. Inputs: `.settings` (meow.kuberaySettings), `.tenant`, `.id`, `.spec` (text),
`.runDir`, `.workers`, `.cpus`, `.gpus`, `.jobEnv` (dict).
*/}}
{{- define "meow.rayJob" -}}
{{- $name := printf "meow-%s" .id }}
{{- $labels := dict
  "app.kubernetes.io/name" "meow"
  "app.kubernetes.io/component" "job"
  "app.kubernetes.io/managed-by" "meow-platform"
  "meow.dev/tenant" .tenant.name
  "meow.dev/job-id" .id }}
{{- $workers := max 1 .workers | int }}
{{- $workerResources := dict "cpu" (include "meow.cpuQuantity" (divf .cpus $workers)) "memory" .settings.worker_memory }}
{{- if gt (float64 .gpus) 0.0 }}
{{- $_ := set $workerResources "nvidia.com/gpu" (ceil (divf .gpus $workers) | int64 | toString) }}
{{- end }}
{{- if and .settings.artifacts_claim (ne .runDir (printf "%s/%s/runs/%s" .settings.artifacts_mount_path .tenant.name .id)) }}
{{- fail (printf "run directory %q is not under the tenant's directory of the artifact claim" .runDir) }}
{{- end }}
{{- if not (regexMatch "^[A-Za-z0-9@%+=:,./_-]+$" .runDir) }}
{{- fail (printf "run directory %q needs shell quoting; keep bucket and prefix to [A-Za-z0-9@%%+=:,./_-]" .runDir) }}
{{- end }}
{{- $env := merge (dict "MEOW_TENANT" .tenant.name "MEOW_JOB_ID" .id "MEOW_SPEC_B64" (b64enc .spec)) .jobEnv }}
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: {{ $name }}
  namespace: {{ .tenant.namespace }}
  labels:
    {{- toYaml $labels | nindent 4 }}
    {{- with .settings.queue_name }}
    # Kueue admits the job by flipping spec.suspend; never set it here.
    kueue.x-k8s.io/queue-name: {{ . }}
    {{- end }}
spec:
  entrypoint: python -m meow_platform.jobrun --run-dir {{ .runDir }}
  # The spec travels base64-encoded in the job's environment, never in a shell command.
  runtimeEnvYAML: |
    {{- toYaml (dict "env_vars" $env) | nindent 4 }}
  jobId: {{ $name }}
  metadata:
    tenant: {{ .tenant.name }}
    job_id: {{ .id | quote }}
  # A submitter pod runs `ray job submit` and follows the logs (the control plane reads them).
  submissionMode: K8sJobMode
  shutdownAfterJobFinishes: true
  ttlSecondsAfterFinished: {{ .settings.ttl_seconds_after_finished }}
  activeDeadlineSeconds: {{ .settings.active_deadline_seconds }}
  backoffLimit: {{ .settings.backoff_limit }}
  submitterPodTemplate:
    {{- include "meow.submitterPodTemplate" (dict "labels" $labels "settings" .settings) | nindent 4 }}
  rayClusterSpec:
    rayVersion: {{ .settings.ray_version | quote }}
    enableInTreeAutoscaling: false
    authOptions:
      mode: token
    headGroupSpec:
      rayStartParams:
        # The head hosts the driver only; stages' actors and trainers go to the workers.
        num-cpus: "0"
        metrics-export-port: "8080"
      template:
        {{- include "meow.rayPodTemplate" (dict "container" "ray-head" "labels" $labels "settings" .settings "tenant" .tenant.name
              "resources" (dict "cpu" .settings.head_cpu "memory" .settings.head_memory)
              "ports" (include "meow.headPorts" . | fromYamlArray)) | nindent 8 }}
    workerGroupSpecs:
      - groupName: workers
        replicas: {{ $workers }}
        minReplicas: {{ $workers }}
        maxReplicas: {{ $workers }}
        rayStartParams:
          metrics-export-port: "8080"
        template:
          {{- include "meow.rayPodTemplate" (dict "container" "ray-worker" "labels" $labels "settings" .settings "tenant" .tenant.name
                "resources" $workerResources "ports" (list (dict "name" "metrics" "containerPort" 8080))) | nindent 10 }}
{{- end }}

{{/* Resources of each probing RayService worker (requests and limits alike, as for jobs). */}}
{{- define "meow.probeWorkerResources" -}}
cpu: {{ .Values.probe.worker.cpu | quote }}
memory: {{ .Values.probe.worker.memory | quote }}
{{- if .Values.probe.worker.gpus }}
nvidia.com/gpu: {{ .Values.probe.worker.gpus | quote }}
{{- end }}
{{- end }}

{{/* A projected volume with what automountServiceAccountToken would mount (token, CA, namespace), for one container. */}}
{{- define "meow.serviceAccountTokenVolume" -}}
- name: {{ .name }}
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - {key: ca.crt, path: ca.crt}
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}
{{- end }}
